// SPDX-License-Identifier: Apache-2.0
#include "crypto/address.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/testing/hex.h"

namespace shadowrelay::crypto {
namespace {

using testing::hex;
using testing::unhex;

TEST(AddressTest, ParsesAllThreeTypes) {
  SocksAddress a;
  size_t n = 0;
  ASSERT_EQ(parseAddress(unhex("01 08080808 0035 ff"), &a, &n), AddressParse::Ok);
  EXPECT_EQ(n, 7u);
  EXPECT_EQ(a.toString(), "8.8.8.8:53");
  ASSERT_EQ(parseAddress(unhex("03 0b 6578616d706c652e636f6d 0050"), &a, &n), AddressParse::Ok);
  EXPECT_EQ(n, 15u);
  EXPECT_EQ(a.toString(), "example.com:80");
  ASSERT_EQ(parseAddress(unhex("04 00000000000000000000000000000001 01bb"), &a, &n),
            AddressParse::Ok);
  EXPECT_EQ(n, 19u);
  EXPECT_EQ(a.toString(), "[::1]:443");
}

TEST(AddressTest, NeedMoreForEveryPrefixAndInvalidForBadTypes) {
  for (const char* h : {"0108080808 0035", "030b6578616d706c652e636f6d0050",
                        "04000000000000000000000000000000010050"}) {
    std::vector<uint8_t> full = unhex(h);
    for (size_t cut = 0; cut < full.size(); ++cut) {
      SocksAddress a;
      size_t n = 0;
      EXPECT_EQ(parseAddress(std::span<const uint8_t>(full).first(cut), &a, &n),
                AddressParse::NeedMore)
          << h << " cut " << cut;
    }
  }
  SocksAddress a;
  size_t n = 0;
  EXPECT_EQ(parseAddress(unhex("00 0102030405"), &a, &n), AddressParse::Invalid);
  EXPECT_EQ(parseAddress(unhex("05 0102030405"), &a, &n), AddressParse::Invalid);
  EXPECT_EQ(parseAddress(unhex("11 08080808 0035"), &a, &n), AddressParse::Invalid);
  EXPECT_EQ(parseAddress(unhex("03 00 0050"), &a, &n), AddressParse::Invalid);
}

TEST(AddressTest, WriteRoundTripsAndRefusesBadInput) {
  for (const SocksAddress& a :
       {SocksAddress::ipv4({1, 2, 3, 4}, 8080), SocksAddress::domain("a.example", 443),
        SocksAddress::ipv6({0x20, 0x01, 0x0d, 0xb8}, 53), SocksAddress::domain(std::string(255, 'x'), 1)}) {
    std::vector<uint8_t> buf(a.size());
    ASSERT_EQ(writeAddress(a, buf), a.size());
    SocksAddress back;
    size_t n = 0;
    ASSERT_EQ(parseAddress(buf, &back, &n), AddressParse::Ok);
    EXPECT_EQ(back, a);
    EXPECT_EQ(n, a.size());
    std::vector<uint8_t> small(a.size() - 1);
    EXPECT_EQ(writeAddress(a, small), 0u);
  }
  std::vector<uint8_t> buf(300);
  EXPECT_EQ(writeAddress(SocksAddress::domain(std::string(256, 'x'), 1), buf), 0u);
  EXPECT_EQ(writeAddress(SocksAddress::domain("", 1), buf), 0u);
}

// Fuzz-style: random bytes in exact-size heap buffers (ASan catches any over-read).
TEST(AddressTest, RandomInputNeverOverreads) {
  std::mt19937 rng(99);
  for (int i = 0; i < 200000; ++i) {
    const size_t len = rng() % 40;
    std::unique_ptr<uint8_t[]> data(new uint8_t[len]);
    for (size_t j = 0; j < len; ++j) data[j] = static_cast<uint8_t>(rng());
    if (len > 0 && i % 2 == 0) data[0] = static_cast<uint8_t>(1 + (rng() % 4));
    SocksAddress a;
    size_t n = 0;
    if (parseAddress({data.get(), len}, &a, &n) == AddressParse::Ok) {
      ASSERT_LE(n, len);
      ASSERT_EQ(n, a.size());
    }
  }
}

}  // namespace
}  // namespace shadowrelay::crypto
