// SPDX-License-Identifier: Apache-2.0
#include "crypto/legacy_stream.h"

#include <string>
#include <vector>

#include "crypto/aead_stream.h"
#include "crypto/key_derivation.h"
#include "crypto/openssl_aead.h"
#include "crypto/udp_codec.h"
#include "gtest/gtest.h"
#include "tests/crypto/decode_in_pieces.h"
#include "tests/crypto/stream_vectors.h"

namespace shadowrelay::crypto {
namespace {

using testing::kStreamPassword;
using testing::kStreamPlain;
using testing::kStreamVectors;
using testing::StreamVector;

std::vector<uint8_t> bytes(std::string_view s) { return {s.begin(), s.end()}; }

const MethodInfo& methodOf(const StreamVector& v) { return **findAnyMethod(v.method); }

// Every stream method of the table has a vector, and every vector a stream method.
TEST(LegacyStreamTest, VectorsCoverTheFourteenStreamMethods) {
  size_t streams = 0;
  for (const MethodInfo& m : methodTable()) {
    if (!isStream(m)) continue;
    ++streams;
    EXPECT_EQ(m.tag_size, 0u) << m.name;
    EXPECT_EQ(m.nonce_size, m.salt_size) << m.name;
    EXPECT_FALSE(m.recommended) << m.name;
  }
  EXPECT_EQ(streams, 14u);
  EXPECT_EQ(std::size(kStreamVectors), 14u);
  for (const StreamVector& v : kStreamVectors) {
    auto m = findAnyMethod(v.method);
    ASSERT_TRUE(m.ok()) << v.method;
    EXPECT_TRUE(isStream(**m));
    EXPECT_EQ((*m)->key_size, v.key.size()) << v.method;
    EXPECT_EQ((*m)->salt_size, v.iv.size()) << v.method;
  }
}

TEST(LegacyStreamTest, KeyIsEvpBytesToKeyOfThePassword) {
  for (const StreamVector& v : kStreamVectors) {
    const MasterKey key = evpBytesToKey(absl::string_view(kStreamPassword.data(), kStreamPassword.size()), methodOf(v).key_size);
    EXPECT_EQ(std::vector<uint8_t>(key.bytes().begin(), key.bytes().end()), bytes(v.key))
        << v.method;
  }
}

// Known answers in one call, in pieces of every awkward size, and in place.
TEST(LegacyStreamTest, EncryptsAndDecryptsKnownAnswersInAnySplit) {
  const std::vector<uint8_t> plain = bytes(kStreamPlain);
  for (const StreamVector& v : kStreamVectors) {
    SCOPED_TRACE(v.method);
    const MethodInfo& m = methodOf(v);
    const std::vector<uint8_t> want = bytes(v.ciphertext);
    for (size_t piece : {plain.size(), size_t{1}, size_t{7}, size_t{16}, size_t{63}, size_t{64},
                         size_t{65}, size_t{100}}) {
      SCOPED_TRACE(piece);
      StreamCipherPtr enc = createStreamCipher(m, bytes(v.key), bytes(v.iv), true);
      StreamCipherPtr dec = createStreamCipher(m, bytes(v.key), bytes(v.iv), false);
      ASSERT_NE(enc, nullptr);
      ASSERT_NE(dec, nullptr);
      std::vector<uint8_t> buf = plain;
      for (size_t at = 0; at < buf.size(); at += piece) {
        const size_t n = std::min(piece, buf.size() - at);
        ASSERT_TRUE(enc->apply({buf.data() + at, n}, buf.data() + at));  // in place
      }
      EXPECT_EQ(buf, want);
      for (size_t at = 0; at < buf.size(); at += piece) {
        const size_t n = std::min(piece, buf.size() - at);
        ASSERT_TRUE(dec->apply({buf.data() + at, n}, buf.data() + at));
      }
      EXPECT_EQ(buf, plain);
    }
  }
}

TEST(LegacyStreamTest, RefusesWrongSizesAndAeadMethods) {
  const MethodInfo& aes = **findAnyMethod("aes-256-cfb");
  const std::vector<uint8_t> key(32, 1), iv(16, 2);
  EXPECT_NE(createStreamCipher(aes, key, iv, true), nullptr);
  EXPECT_EQ(createStreamCipher(aes, std::vector<uint8_t>(16, 1), iv, true), nullptr);
  EXPECT_EQ(createStreamCipher(aes, key, std::vector<uint8_t>(8, 2), true), nullptr);
  EXPECT_EQ(createStreamCipher(**findAnyMethod("aes-256-gcm"), key, std::vector<uint8_t>(32, 2),
                               true),
            nullptr);
}

TEST(LegacyStreamTest, LibraryPerMethod) {
  EXPECT_EQ(streamLibrary(**findAnyMethod("aes-128-ctr")), "openssl");
  EXPECT_EQ(streamLibrary(**findAnyMethod("camellia-256-cfb")), "openssl");
  EXPECT_EQ(streamLibrary(**findAnyMethod("bf-cfb")), "openssl-legacy");
  EXPECT_EQ(streamLibrary(**findAnyMethod("rc4-md5")), "openssl-legacy");
  EXPECT_EQ(streamLibrary(**findAnyMethod("salsa20")), "libsodium");
  EXPECT_EQ(streamLibrary(**findAnyMethod("chacha20")), "libsodium");
  EXPECT_EQ(streamLibrary(**findAnyMethod("chacha20-ietf")), "libsodium");
  EXPECT_EQ(streamLibrary(**findAnyMethod("aes-128-gcm")), "");
}

// OTA (Python 2.x one_time_auth, the "-auth" suffix) is refused, saying why.
TEST(LegacyStreamTest, OneTimeAuthSuffixIsRefusedWithAReason) {
  for (const char* name : {"aes-256-cfb-auth", "RC4-MD5-AUTH"}) {
    auto m = findAnyMethod(name);
    ASSERT_FALSE(m.ok()) << name;
    EXPECT_NE(m.status().message().find("one-time auth (OTA)"), std::string::npos);
    EXPECT_NE(m.status().message().find("deprecated and broken"), std::string::npos);
  }
  // The lookup of the AEAD-only callers does not hand out a stream method either.
  auto m = findMethod("aes-256-cfb");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("legacy stream method"), std::string::npos);
}

// TCP: IV | stream, through the codec the relay uses, in pieces as a socket delivers them.
TEST(LegacyStreamTest, TcpCodecDecodesAndEncodesTheVectors) {
  const std::vector<uint8_t> plain = bytes(kStreamPlain);
  for (const StreamVector& v : kStreamVectors) {
    SCOPED_TRACE(v.method);
    const MethodInfo& m = methodOf(v);
    std::vector<uint8_t> wire = bytes(v.iv);
    const std::vector<uint8_t> ct = bytes(v.ciphertext);
    wire.insert(wire.end(), ct.begin(), ct.end());

    for (const std::vector<size_t>& cuts :
         {std::vector<size_t>{}, std::vector<size_t>{1, 5, 20, 21, 100},
          std::vector<size_t>{m.salt_size - 1, m.salt_size, 77}}) {
      AeadStreamDecoder decoder(m, opensslProvider(), bytes(v.key));
      EXPECT_FALSE(decoder.authenticated());
      std::vector<uint8_t> got;
      // A small output buffer: the decoder stops where it is full and goes on next call.
      const DecodeStatus s = shadowrelay::testing::decodeInPieces(
          wire, cuts, 50, DecodeStatus::Ok,
          [&](auto in, auto out, CodecProgress* p) { return decoder.decode(in, out, p); }, &got);
      EXPECT_EQ(s, DecodeStatus::Ok);
      EXPECT_EQ(got, plain);
      EXPECT_TRUE(decoder.authenticated());  // "the IV was read": nothing authenticates
      EXPECT_EQ(std::vector<uint8_t>(decoder.salt().begin(), decoder.salt().end()), bytes(v.iv));
    }

    AeadStreamEncoder encoder(m, opensslProvider(), bytes(v.key), bytes(v.iv));
    ASSERT_TRUE(encoder.valid());
    EXPECT_EQ(encoder.maxEncodedSize(plain.size()), wire.size());
    std::vector<uint8_t> out(wire.size());
    CodecProgress first, second;
    ASSERT_TRUE(encoder.encode({plain.data(), 10}, out, &first));
    ASSERT_EQ(first.consumed, 10u);
    ASSERT_TRUE(encoder.encode({plain.data() + 10, plain.size() - 10},
                               std::span<uint8_t>(out).subspan(first.produced), &second));
    EXPECT_EQ(second.consumed, plain.size() - 10);
    EXPECT_EQ(first.produced + second.produced, wire.size());
    EXPECT_EQ(out, wire);
    // Trial decryption has nothing to go on: a stream opens with any key.
    EXPECT_FALSE(streamOpensWith(m, opensslProvider(), bytes(v.key), wire));
  }
}

// UDP: IV | stream per datagram (the same bytes as a stream's start), fresh IV per packet.
TEST(LegacyStreamTest, UdpCodecOpensTheVectorsAndSealsWithFreshIvs) {
  const std::vector<uint8_t> plain = bytes(kStreamPlain);
  for (const StreamVector& v : kStreamVectors) {
    SCOPED_TRACE(v.method);
    const MethodInfo& m = methodOf(v);
    UdpCodec codec(m, opensslProvider());
    EXPECT_EQ(codec.overhead(), m.salt_size);
    std::vector<uint8_t> packet = bytes(v.iv);
    const std::vector<uint8_t> ct = bytes(v.ciphertext);
    packet.insert(packet.end(), ct.begin(), ct.end());
    std::vector<uint8_t> out(packet.size());
    auto n = codec.open(bytes(v.key), packet, out);
    ASSERT_TRUE(n.has_value());
    out.resize(*n);
    EXPECT_EQ(out, plain);
    // Shorter than the IV: dropped.
    EXPECT_FALSE(codec.open(bytes(v.key), {packet.data(), m.salt_size - 1}, out).has_value());

    std::vector<uint8_t> a(plain.size() + codec.overhead()), b(a.size());
    ASSERT_EQ(codec.seal(bytes(v.key), plain, a), a.size());
    ASSERT_EQ(codec.seal(bytes(v.key), plain, b), b.size());
    EXPECT_NE(a, b);
    std::vector<uint8_t> back(plain.size());
    ASSERT_EQ(codec.open(bytes(v.key), a, back), plain.size());
    EXPECT_EQ(back, plain);
  }
}

}  // namespace
}  // namespace shadowrelay::crypto
