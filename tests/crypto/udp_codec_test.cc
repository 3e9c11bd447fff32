// SPDX-License-Identifier: Apache-2.0
#include "crypto/udp_codec.h"

#include "crypto/key_derivation.h"
#include "gtest/gtest.h"
#include "tests/testing/hex.h"
#include "tests/testing/providers.h"

namespace shadowrelay::crypto {
namespace {

using testing::allProviders;
using testing::hex;
using testing::unhex;

// vectors.txt §3c: aes-128-gcm, password foobar, salt 0f0e..00, to 8.8.8.8:53 "hello".
TEST(UdpCodecTest, OpensSharedVector) {
  const MethodInfo& m = **findMethod("aes-128-gcm");
  std::vector<uint8_t> packet = unhex(
      "0f0e0d0c0b0a09080706050403020100 4f8af7ffc2932f9a3476f92a23fda47e 0390ae91246656fd61f501d1");
  for (const AeadProvider* p : allProviders()) {
    UdpCodec codec(m, *p);
    std::vector<uint8_t> out(packet.size());
    auto n = codec.open(evpBytesToKey("foobar", 16).bytes(), packet, out);
    ASSERT_TRUE(n.has_value());
    out.resize(*n);
    EXPECT_EQ(hex(out), "01080808080035" "68656c6c6f");
    // In place (out aliases packet + salt).
    std::vector<uint8_t> copy = packet;
    auto m2 = codec.open(evpBytesToKey("foobar", 16).bytes(), copy,
                         std::span<uint8_t>(copy).subspan(16));
    ASSERT_TRUE(m2.has_value());
    EXPECT_EQ(hex(std::span<const uint8_t>(copy).subspan(16, *m2)), "0108080808003568656c6c6f");
  }
}

TEST(UdpCodecTest, RoundTripFreshSaltPerPacketAndRejections) {
  for (const MethodInfo& m : allMethods()) {
    for (const AeadProvider* p : allProviders()) {
      SCOPED_TRACE(std::string(m.name) + " " + std::string(p->name()));
      UdpCodec codec(m, *p);
      MasterKey key = evpBytesToKey("udp", m.key_size);
      std::vector<uint8_t> plain(1200, 0x33);
      std::vector<uint8_t> a(plain.size() + codec.overhead());
      std::vector<uint8_t> b(plain.size() + codec.overhead());
      ASSERT_EQ(codec.seal(key.bytes(), plain, a), a.size());
      ASSERT_EQ(codec.seal(key.bytes(), plain, b), b.size());
      EXPECT_NE(a, b);  // fresh salt every datagram
      std::vector<uint8_t> out(plain.size());
      auto n = codec.open(key.bytes(), a, out);
      ASSERT_TRUE(n.has_value());
      EXPECT_EQ(out, plain);
      a[a.size() / 2] ^= 1;
      EXPECT_FALSE(codec.open(key.bytes(), a, out).has_value());
      EXPECT_FALSE(codec.open(evpBytesToKey("x", m.key_size).bytes(), b, out).has_value());
      EXPECT_FALSE(
          codec.open(key.bytes(), std::span<const uint8_t>(b).first(m.salt_size + 15), out));
      std::vector<uint8_t> small(10);
      EXPECT_EQ(codec.seal(key.bytes(), plain, small), 0u);
      // Maximum UDP payload.
      std::vector<uint8_t> big(65507 - codec.overhead(), 0x44);
      std::vector<uint8_t> sealed(65507);
      ASSERT_EQ(codec.seal(key.bytes(), big, sealed), 65507u);
      std::vector<uint8_t> opened(big.size());
      ASSERT_TRUE(codec.open(key.bytes(), sealed, opened).has_value());
      EXPECT_EQ(opened, big);
    }
  }
}

}  // namespace
}  // namespace shadowrelay::crypto
