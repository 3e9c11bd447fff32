// SPDX-License-Identifier: Apache-2.0
#include "crypto/aead_stream.h"

#include <random>

#include "crypto/key_derivation.h"
#include "gtest/gtest.h"
#include "tests/crypto/decode_in_pieces.h"
#include "tests/testing/hex.h"
#include "tests/testing/providers.h"

namespace shadowrelay::crypto {
namespace {

using testing::allProviders;
using testing::bytesOf;
using testing::hex;
using testing::range;
using testing::unhex;

const MethodInfo& method(const char* name) { return **findMethod(name); }

// Feeds `wire` to the decoder in pieces cut at `splits` (decode_in_pieces.h). Returns the
// plaintext, or the first error.
DecodeStatus decodeSplit(AeadStreamDecoder& dec, const std::vector<uint8_t>& wire,
                         const std::vector<size_t>& splits, std::vector<uint8_t>* plain,
                         size_t out_cap = kMaxChunkPayload) {
  return testing::decodeInPieces(
      wire, splits, out_cap, DecodeStatus::Ok,
      [&](std::span<const uint8_t> in, std::span<uint8_t> out, CodecProgress* p) {
        return dec.decode(in, out, p);
      },
      plain);
}

std::vector<uint8_t> encodeAll(AeadStreamEncoder& enc, const std::vector<uint8_t>& plain) {
  std::vector<uint8_t> out(enc.maxEncodedSize(plain.size()));
  CodecProgress p;
  EXPECT_TRUE(enc.encode(plain, out, &p));
  EXPECT_EQ(p.consumed, plain.size());
  out.resize(p.produced);
  return out;
}

const char* kFirstChunkPlain =
    "030b6578616d706c652e636f6d0050474554202f20485454502f312e300d0a0d0a";

// vectors.txt §3 and §3b: the first chunk of a real client stream.
TEST(AeadStreamTest, EncoderMatchesSharedVectors) {
  for (const AeadProvider* p : allProviders()) {
    SCOPED_TRACE(std::string(p->name()));
    {
      const MethodInfo& m = method("aes-128-gcm");
      AeadStreamEncoder enc(m, *p, evpBytesToKey("foobar", 16).bytes(), range(0, 16));
      EXPECT_EQ(hex(encodeAll(enc, unhex(kFirstChunkPlain))),
                "000102030405060708090a0b0c0d0e0f"
                "f86f6a0b71fb610baef2fdf0350d40621433"
                "3c0fc8a22dda49f5462a585eb764a006b81c0dadbbca471fb4e4ba2584eff43f"
                "e19e703369dd8feac74a97129b948c23f8");
    }
    {
      const MethodInfo& m = method("chacha20-ietf-poly1305");
      AeadStreamEncoder enc(m, *p, evpBytesToKey("foobar", 32).bytes(), range(0, 32));
      EXPECT_EQ(hex(encodeAll(enc, unhex(kFirstChunkPlain))),
                hex(range(0, 32)) + "5db63fae9b0dadff83f8f6ed6bf81d33c4ea"
                "ac89d42411949fff2de8a5e263a062e62515e9a8c5e81437f00724cb1d66928e"
                "8146da4894dd2bebc44ddd53c0215fc129");
    }
  }
}

TEST(AeadStreamTest, DecoderReadsSharedVectorByteByByte) {
  const MethodInfo& m = method("aes-128-gcm");
  std::vector<uint8_t> wire = unhex(
      "000102030405060708090a0b0c0d0e0ff86f6a0b71fb610baef2fdf0350d40621433"
      "3c0fc8a22dda49f5462a585eb764a006b81c0dadbbca471fb4e4ba2584eff43f"
      "e19e703369dd8feac74a97129b948c23f8");
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < wire.size(); ++i) every_byte.push_back(i);
  for (const AeadProvider* p : allProviders()) {
    AeadStreamDecoder dec(m, *p, evpBytesToKey("foobar", 16).bytes());
    std::vector<uint8_t> plain;
    ASSERT_EQ(decodeSplit(dec, wire, every_byte, &plain), DecodeStatus::Ok);
    EXPECT_EQ(hex(plain), kFirstChunkPlain);
    EXPECT_TRUE(dec.authenticated());
    EXPECT_EQ(hex(dec.salt()), "000102030405060708090a0b0c0d0e0f");
  }
}

TEST(AeadStreamTest, NonceIncrementIsLittleEndianAcrossAllBytes) {
  std::vector<uint8_t> n(12, 0);
  incrementNonce(n);
  EXPECT_EQ(hex(n), "010000000000000000000000");
  n = unhex("ff0000000000000000000000");
  incrementNonce(n);
  EXPECT_EQ(hex(n), "000100000000000000000000");
  n = unhex("ffffffffffffffffffffff00");
  incrementNonce(n);
  EXPECT_EQ(hex(n), "000000000000000000000001");
  n = std::vector<uint8_t>(24, 0xff);
  incrementNonce(n);
  EXPECT_EQ(n, std::vector<uint8_t>(24, 0));
}

TEST(AeadStreamTest, RandomSplitsDecodeIdenticallyForEveryMethodAndProviderPair) {
  std::mt19937 rng(2024);
  auto providers = allProviders();
  for (const MethodInfo& m : allMethods()) {
    for (const AeadProvider* a : providers) {
      for (const AeadProvider* b : providers) {
        SCOPED_TRACE(std::string(m.name) + " " + std::string(a->name()) + "->" +
                     std::string(b->name()));
        MasterKey key = evpBytesToKey("split test", m.key_size);
        std::vector<uint8_t> plain(100000);
        for (auto& x : plain) x = static_cast<uint8_t>(rng());
        AeadStreamEncoder enc(m, *a, key.bytes());
        // Encode in irregular write sizes, as a relay would.
        std::vector<uint8_t> wire;
        size_t r = 0;
        while (r < plain.size()) {
          const size_t n = std::min<size_t>(plain.size() - r, 1 + rng() % 40000);
          std::vector<uint8_t> piece(plain.begin() + r, plain.begin() + r + n);
          std::vector<uint8_t> out = encodeAll(enc, piece);
          wire.insert(wire.end(), out.begin(), out.end());
          r += n;
        }
        for (int round = 0; round < 5; ++round) {
          std::vector<size_t> splits;
          for (int i = 0; i < 30; ++i) splits.push_back(rng() % wire.size());
          std::sort(splits.begin(), splits.end());
          AeadStreamDecoder dec(m, *b, key.bytes());
          std::vector<uint8_t> got;
          // A small output buffer too: the decoder must stop, not overflow.
          ASSERT_EQ(decodeSplit(dec, wire, splits, &got, round == 0 ? 20000 : 16383),
                    DecodeStatus::Ok);
          ASSERT_EQ(got, plain);
        }
      }
    }
  }
}

TEST(AeadStreamTest, ChunksNeverExceedMaxPayload) {
  const MethodInfo& m = method("aes-256-gcm");
  const AeadProvider& p = *allProviders()[0];
  MasterKey key = evpBytesToKey("k", 32);
  AeadStreamEncoder enc(m, p, key.bytes());
  std::vector<uint8_t> plain(3 * kMaxChunkPayload + 5, 0x61);
  std::vector<uint8_t> wire = encodeAll(enc, plain);
  EXPECT_EQ(wire.size(), 32 + plain.size() + 4 * (18 + 16));
  // Encoding into a too-small buffer makes progress in short chunks and never overflows.
  AeadStreamEncoder small(m, p, key.bytes());
  std::vector<uint8_t> out(32 + 34 + 10);
  CodecProgress pr;
  ASSERT_TRUE(small.encode(plain, out, &pr));
  EXPECT_EQ(pr.consumed, 10u);
  EXPECT_EQ(pr.produced, out.size());
}

TEST(AeadStreamTest, TamperTruncationWrongKeyAndBadLength) {
  const MethodInfo& m = method("chacha20-ietf-poly1305");
  for (const AeadProvider* p : allProviders()) {
    MasterKey key = evpBytesToKey("secret", 32);
    AeadStreamEncoder enc(m, *p, key.bytes());
    std::vector<uint8_t> wire = encodeAll(enc, bytesOf("hello world, this is a test"));
    // Any flipped byte after the salt is an authentication failure.
    for (size_t i = 32; i < wire.size(); ++i) {
      std::vector<uint8_t> bad = wire;
      bad[i] ^= 0x80;
      AeadStreamDecoder dec(m, *p, key.bytes());
      std::vector<uint8_t> got;
      EXPECT_EQ(decodeSplit(dec, bad, {}, &got), DecodeStatus::AuthFailed) << i;
      EXPECT_TRUE(got.empty());
    }
    // Truncation: no plaintext is released from an incomplete chunk.
    for (size_t cut = 0; cut < wire.size(); ++cut) {
      AeadStreamDecoder dec(m, *p, key.bytes());
      std::vector<uint8_t> got;
      std::vector<uint8_t> part(wire.begin(), wire.begin() + cut);
      EXPECT_EQ(decodeSplit(dec, part, {}, &got), DecodeStatus::Ok);
      EXPECT_TRUE(got.empty());
      EXPECT_EQ(dec.authenticated(), cut >= 32 + 18);
    }
    // Wrong key.
    AeadStreamDecoder wrong(m, *p, evpBytesToKey("other", 32).bytes());
    std::vector<uint8_t> got;
    EXPECT_EQ(decodeSplit(wrong, wire, {}, &got), DecodeStatus::AuthFailed);
    EXPECT_FALSE(wrong.authenticated());
    // Errors are sticky.
    CodecProgress pr;
    std::vector<uint8_t> out(100);
    EXPECT_EQ(wrong.decode(wire, out, &pr), DecodeStatus::AuthFailed);
    // A length above 0x3FFF (validly sealed) is rejected.
    AeadStreamEncoder big(m, *p, key.bytes());
    big.setMaxPayloadForTest(0x4000);
    std::vector<uint8_t> big_wire = encodeAll(big, std::vector<uint8_t>(0x4000, 1));
    AeadStreamDecoder dec(m, *p, key.bytes());
    EXPECT_EQ(decodeSplit(dec, big_wire, {}, &got, 0x4000), DecodeStatus::BadLength);
  }
}

// Fuzz-style: random bytes (and random bytes after a valid salt) never crash or over-read;
// run under ASan by ./dev test.
TEST(AeadStreamTest, RandomInputIsRejectedWithoutOverread) {
  std::mt19937 rng(31337);
  const MethodInfo& m = method("aes-128-gcm");
  const AeadProvider& p = *allProviders()[0];
  MasterKey key = evpBytesToKey("fuzz", 16);
  for (int i = 0; i < 3000; ++i) {
    const size_t len = rng() % 200;
    std::unique_ptr<uint8_t[]> data(new uint8_t[len]);
    for (size_t j = 0; j < len; ++j) data[j] = static_cast<uint8_t>(rng());
    AeadStreamDecoder dec(m, p, key.bytes());
    std::unique_ptr<uint8_t[]> out(new uint8_t[64]);
    CodecProgress pr;
    const DecodeStatus s = dec.decode({data.get(), len}, {out.get(), 64}, &pr);
    ASSERT_LE(pr.consumed, len);
    ASSERT_EQ(pr.produced, 0u);
    if (len >= 16 + 18) {
      ASSERT_EQ(s, DecodeStatus::AuthFailed);
    }
  }
}

}  // namespace
}  // namespace shadowrelay::crypto
