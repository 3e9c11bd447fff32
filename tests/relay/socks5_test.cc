// SPDX-License-Identifier: Apache-2.0
#include "relay/socks5.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/testing/hex.h"

namespace shadowrelay::relay::socks5 {
namespace {

using testing::hex;
using testing::unhex;

TEST(Socks5Test, Greeting) {
  Greeting g;
  EXPECT_EQ(parseGreeting(unhex("05"), &g), Parse::NeedMore);
  EXPECT_EQ(parseGreeting(unhex("0502"), &g), Parse::NeedMore);
  ASSERT_EQ(parseGreeting(unhex("05020200"), &g), Parse::Ok);
  EXPECT_TRUE(g.offers_no_auth);
  EXPECT_EQ(g.size, 4u);
  ASSERT_EQ(parseGreeting(unhex("050102"), &g), Parse::Ok);
  EXPECT_FALSE(g.offers_no_auth);
  EXPECT_EQ(parseGreeting(unhex("0401"), &g), Parse::Invalid);  // SOCKS4
  EXPECT_EQ(parseGreeting(unhex("47"), &g), Parse::Invalid);    // "GET ..."
  EXPECT_EQ(parseGreeting(unhex("0500"), &g), Parse::Invalid);
}

TEST(Socks5Test, ConnectRequestAllAddressTypes) {
  Request r;
  Reply rep;
  const std::vector<uint8_t> in = unhex("050100 03 0b 6578616d706c652e636f6d 0050 ff");
  ASSERT_EQ(parseRequest(in, &r, &rep), Parse::Ok);  // raw_address points into `in`
  EXPECT_EQ(r.command, 0x01);
  EXPECT_EQ(r.address.toString(), "example.com:80");
  EXPECT_EQ(r.size, 18u);
  EXPECT_EQ(hex(r.raw_address), "030b6578616d706c652e636f6d0050");
  ASSERT_EQ(parseRequest(unhex("050100 01 7f000001 1f90"), &r, &rep), Parse::Ok);
  EXPECT_EQ(r.address.toString(), "127.0.0.1:8080");
  ASSERT_EQ(parseRequest(unhex("050300 04 00000000000000000000000000000001 0035"), &r, &rep),
            Parse::Ok);
  EXPECT_EQ(r.command, 0x03);
  EXPECT_EQ(r.address.toString(), "[::1]:53");
}

TEST(Socks5Test, BadRequestsAndReplyCodes) {
  Request r;
  Reply rep;
  EXPECT_EQ(parseRequest(unhex("050100 05 01020304 0050"), &r, &rep), Parse::Invalid);
  EXPECT_EQ(rep, Reply::AddressTypeNotSupported);
  EXPECT_EQ(parseRequest(unhex("040100 01 01020304 0050"), &r, &rep), Parse::Invalid);
  EXPECT_EQ(rep, Reply::GeneralFailure);
  EXPECT_EQ(parseRequest(unhex("050101 01 01020304 0050"), &r, &rep), Parse::Invalid);
  EXPECT_EQ(parseRequest(unhex("050100 03 00 0050"), &r, &rep), Parse::Invalid);
  const std::vector<uint8_t> full = unhex("050100 03 0b 6578616d706c652e636f6d 0050");
  for (size_t cut = 0; cut < full.size(); ++cut) {
    EXPECT_EQ(parseRequest(std::span<const uint8_t>(full).first(cut), &r, &rep), Parse::NeedMore)
        << cut;
  }
}

TEST(Socks5Test, Replies) {
  uint8_t buf[32];
  size_t n = writeReply(Reply::Succeeded, crypto::SocksAddress::ipv4({127, 0, 0, 1}, 1080), buf);
  EXPECT_EQ(hex({buf, n}), "05000001" "7f000001" "0438");
  n = writeReply(Reply::CommandNotSupported, crypto::SocksAddress::ipv4({0, 0, 0, 0}, 0), buf);
  EXPECT_EQ(hex({buf, n}), "05070001000000000000");
  EXPECT_EQ(writeReply(Reply::Succeeded, crypto::SocksAddress::ipv4({0, 0, 0, 0}, 0),
                       std::span<uint8_t>(buf, 5)),
            0u);
}

TEST(Socks5Test, UdpHeader) {
  UdpHeader h;
  ASSERT_EQ(parseUdpHeader(unhex("000000 01 08080808 0035 68656c6c6f"), &h), Parse::Ok);
  EXPECT_EQ(h.frag, 0);
  EXPECT_EQ(h.size, 10u);
  EXPECT_EQ(h.address.toString(), "8.8.8.8:53");
  ASSERT_EQ(parseUdpHeader(unhex("000001 01 08080808 0035"), &h), Parse::Ok);
  EXPECT_EQ(h.frag, 1);
  EXPECT_EQ(parseUdpHeader(unhex("010000 01 08080808 0035"), &h), Parse::Invalid);
  EXPECT_EQ(parseUdpHeader(unhex("000000 07"), &h), Parse::Invalid);
}

TEST(Socks5Test, RandomInputNeverOverreads) {
  std::mt19937 rng(5);
  for (int i = 0; i < 100000; ++i) {
    const size_t len = rng() % 32;
    std::unique_ptr<uint8_t[]> data(new uint8_t[len]);
    for (size_t j = 0; j < len; ++j) data[j] = static_cast<uint8_t>(rng());
    if (len > 0) data[0] = i % 3 == 0 ? 0 : 5;
    std::span<const uint8_t> in(data.get(), len);
    Greeting g;
    Request r;
    Reply rep;
    UdpHeader u;
    if (parseGreeting(in, &g) == Parse::Ok) {
      ASSERT_LE(g.size, len);
    }
    if (parseRequest(in, &r, &rep) == Parse::Ok) {
      ASSERT_LE(r.size, len);
    }
    if (parseUdpHeader(in, &u) == Parse::Ok) {
      ASSERT_LE(u.size, len);
    }
  }
}

}  // namespace
}  // namespace shadowrelay::relay::socks5
