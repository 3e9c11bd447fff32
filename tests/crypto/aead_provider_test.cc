// SPDX-License-Identifier: Apache-2.0
// Published known-answer vectors and cross-provider checks for every AEAD provider.
#include <algorithm>
#include <array>
#include <random>

#include "crypto/aead.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "gtest/gtest.h"
#include "tests/testing/hex.h"
#include "tests/testing/providers.h"

namespace shadowrelay::crypto {
namespace {

using testing::allProviders;
using testing::hex;
using testing::range;
using testing::unhex;

// OpenSSL through EVP_CIPHER_CTX: the fallback of opensslProvider(), which calls the cipher's
// provider functions directly.
const AeadProvider& opensslEvpPath() {
  static const OpensslProvider provider(OpensslProvider::Path::Evp);
  return provider;
}

std::vector<const AeadProvider*> providersUnderTest() {
  std::vector<const AeadProvider*> out = allProviders();
  out.push_back(&opensslEvpPath());
  return out;
}

std::string label(const AeadProvider* provider) {
  return provider == &opensslEvpPath() ? "openssl (EVP path)" : std::string(provider->name());
}

struct Vector {
  const char* source;
  AeadAlgorithm algorithm;
  std::string key, nonce, aad, plain, cipher, tag;
};

const std::vector<Vector>& vectors() {
  static const std::vector<Vector> v = {
      {"GCM spec (McGrew-Viega) test case 3, AES-128", AeadAlgorithm::Aes128Gcm,
       "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "",
       "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
       "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
       "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
       "4d5c2af327cd64a62cf35abd2ba6fab4"},
      {"GCM spec test case 15, AES-256", AeadAlgorithm::Aes256Gcm,
       "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
       "cafebabefacedbaddecaf888", "",
       "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
       "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
       "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
       "b094dac5d93471bdec1a502270e3cc6c"},
      {"RFC 8439 2.8.2", AeadAlgorithm::ChaCha20Poly1305,
       "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
       "070000004041424344454647", "50515253c0c1c2c3c4c5c6c7",
       "4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
       "73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
       "6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
       "637265656e20776f756c642062652069742e",
       "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
       "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
       "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
       "3ff4def08e4b7a9de576d26586cec64b6116",
       "1ae10b594f09e26a7e902ecbd0600691"},
      {"draft-irtf-cfrg-xchacha-03 A.3.1", AeadAlgorithm::XChaCha20Poly1305,
       "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
       "404142434445464748494a4b4c4d4e4f5051525354555657", "50515253c0c1c2c3c4c5c6c7",
       "4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
       "73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
       "6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
       "637265656e20776f756c642062652069742e",
       "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
       "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
       "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
       "21f9664c97637da9768812f615c68b13b52e",
       "c0875924c1c7987947deafd8780acf49"},
  };
  return v;
}

TEST(AeadProviderTest, BothProvidersPresentOutsideSanitizers) {
#if defined(SHADOWRELAY_SANITIZER)
  EXPECT_EQ(allProviders().size(), 1u);
#else
  ASSERT_EQ(allProviders().size(), 2u);
  EXPECT_EQ(allProviders()[1]->name(), "boringssl");
#endif
}

// draft-irtf-cfrg-xchacha-03 §2.2.1.
TEST(AeadProviderTest, HChaCha20DraftVector) {
  std::vector<uint8_t> key = range(0, 32);
  std::vector<uint8_t> in = unhex("000000090000004a0000000031415927");
  uint8_t out[32];
  hchacha20(key.data(), in.data(), out);
  EXPECT_EQ(hex(out), "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc");
}

TEST(AeadProviderTest, PublishedVectorsSealAndOpen) {
  for (const AeadProvider* provider : providersUnderTest()) {
    for (const Vector& v : vectors()) {
      SCOPED_TRACE(label(provider) + ": " + v.source);
      ASSERT_TRUE(provider->supports(v.algorithm));
      AeadPtr aead = provider->create(v.algorithm, unhex(v.key));
      ASSERT_NE(aead, nullptr);
      std::vector<uint8_t> plain = unhex(v.plain);
      std::vector<uint8_t> out(plain.size() + kTagSize);
      ASSERT_TRUE(aead->seal(unhex(v.nonce), unhex(v.aad), plain, out.data()));
      EXPECT_EQ(hex(out), v.cipher + v.tag);
      std::vector<uint8_t> back(plain.size());
      ASSERT_TRUE(aead->open(unhex(v.nonce), unhex(v.aad), out, back.data()));
      EXPECT_EQ(back, plain);
      // In place, both ways.
      std::vector<uint8_t> buf = plain;
      buf.resize(plain.size() + kTagSize);
      ASSERT_TRUE(aead->seal(unhex(v.nonce), unhex(v.aad), {buf.data(), plain.size()}, buf.data()));
      EXPECT_EQ(buf, out);
      ASSERT_TRUE(aead->open(unhex(v.nonce), unhex(v.aad), buf, buf.data()));
      EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + plain.size()), plain);
      // Any flipped bit anywhere (ciphertext, tag) fails to open.
      for (size_t i = 0; i < out.size(); i += 7) {
        std::vector<uint8_t> bad = out;
        bad[i] ^= 0x01;
        EXPECT_FALSE(aead->open(unhex(v.nonce), unhex(v.aad), bad, back.data())) << i;
      }
      // Wrong AAD fails.
      if (!v.aad.empty()) {
        EXPECT_FALSE(aead->open(unhex(v.nonce), {}, out, back.data()));
      }
    }
  }
}

TEST(AeadProviderTest, CrossProviderRoundTripsEveryMethod) {
  std::mt19937 rng(7);
  auto providers = providersUnderTest();
  for (const MethodInfo& m : allMethods()) {
    for (const AeadProvider* a : providers) {
      for (const AeadProvider* b : providers) {
        SCOPED_TRACE(std::string(m.name) + " " + label(a) + "->" + label(b));
        std::vector<uint8_t> key(m.key_size);
        std::vector<uint8_t> nonce(m.nonce_size);
        for (auto& x : key) x = static_cast<uint8_t>(rng());
        for (auto& x : nonce) x = static_cast<uint8_t>(rng());
        AeadPtr sealer = a->create(m.algorithm, key);
        AeadPtr opener = b->create(m.algorithm, key);
        ASSERT_NE(sealer, nullptr);
        ASSERT_NE(opener, nullptr);
        for (size_t len : {0u, 1u, 15u, 16u, 17u, 1000u, 16383u, 65507u}) {
          std::vector<uint8_t> plain(len);
          for (auto& x : plain) x = static_cast<uint8_t>(rng());
          std::vector<uint8_t> sealed(len + kTagSize);
          ASSERT_TRUE(sealer->seal(nonce, {}, plain, sealed.data()));
          std::vector<uint8_t> opened(len);
          ASSERT_TRUE(opener->open(nonce, {}, sealed, opened.data())) << len;
          EXPECT_EQ(opened, plain);
        }
        // Rekey to another key: old ciphertext no longer opens.
        std::vector<uint8_t> plain(64, 0x55);
        std::vector<uint8_t> sealed(64 + kTagSize);
        ASSERT_TRUE(sealer->seal(nonce, {}, plain, sealed.data()));
        key[0] ^= 0xff;
        ASSERT_TRUE(opener->rekey(key));
        std::vector<uint8_t> opened(64);
        EXPECT_FALSE(opener->open(nonce, {}, sealed, opened.data()));
      }
    }
  }
}

// Every method of this build's OpenSSL takes the direct path (the EVP path stays tested above).
TEST(AeadProviderTest, OpensslCallsTheProviderFunctionsDirectly) {
  const auto& openssl = static_cast<const OpensslProvider&>(opensslProvider());
  const auto& evp = static_cast<const OpensslProvider&>(opensslEvpPath());
  for (const MethodInfo& m : allMethods()) {
    EXPECT_TRUE(openssl.direct(m.algorithm)) << m.name;
    EXPECT_FALSE(evp.direct(m.algorithm)) << m.name;
  }
}

// The direct path and the EVP path agree byte for byte, with and without AAD, and a context
// that failed to open a message (or was rekeyed) still seals and opens the next one correctly.
TEST(AeadProviderTest, DirectAndEvpPathsAgree) {
  std::mt19937 rng(11);
  for (const MethodInfo& m : allMethods()) {
    SCOPED_TRACE(m.name);
    std::vector<uint8_t> key(m.key_size);
    for (auto& x : key) x = static_cast<uint8_t>(rng());
    AeadPtr direct = opensslProvider().create(m.algorithm, key);
    AeadPtr evp = opensslEvpPath().create(m.algorithm, key);
    ASSERT_NE(direct, nullptr);
    ASSERT_NE(evp, nullptr);
    for (size_t len : {0u, 2u, 33u, 1024u, 16383u}) {
      for (size_t aad_len : {0u, 1u, 13u}) {
        std::vector<uint8_t> nonce(m.nonce_size);
        std::vector<uint8_t> aad(aad_len);
        std::vector<uint8_t> plain(len);
        for (auto& x : nonce) x = static_cast<uint8_t>(rng());
        for (auto& x : aad) x = static_cast<uint8_t>(rng());
        for (auto& x : plain) x = static_cast<uint8_t>(rng());
        std::vector<uint8_t> a(len + kTagSize);
        std::vector<uint8_t> b(len + kTagSize);
        ASSERT_TRUE(direct->seal(nonce, aad, plain, a.data()));
        ASSERT_TRUE(evp->seal(nonce, aad, plain, b.data()));
        EXPECT_EQ(a, b) << len << " " << aad_len;
        std::vector<uint8_t> bad = a;
        bad.back() ^= 0x80;
        std::vector<uint8_t> opened(len);
        EXPECT_FALSE(direct->open(nonce, aad, bad, opened.data()));
        ASSERT_TRUE(direct->open(nonce, aad, a, opened.data()));
        EXPECT_EQ(opened, plain);
      }
    }
    key[1] ^= 0x5a;
    ASSERT_TRUE(direct->rekey(key));
    ASSERT_TRUE(evp->rekey(key));
    std::vector<uint8_t> nonce(m.nonce_size, 0x21);
    std::vector<uint8_t> plain(100, 0x42);
    std::vector<uint8_t> a(100 + kTagSize);
    std::vector<uint8_t> b(100 + kTagSize);
    ASSERT_TRUE(direct->seal(nonce, {}, plain, a.data()));
    ASSERT_TRUE(evp->seal(nonce, {}, plain, b.data()));
    EXPECT_EQ(a, b);
  }
}

// One AES block (no mode): FIPS-197 Appendix C and the Shadowsocks 2022 blocks of
// PROTOCOL.md §2.8 (UDP separate header and SIP023 UDP identity header, both keyed with PSK16).
TEST(AeadProviderTest, AesBlockKnownAnswersBothWaysAndInPlace) {
  struct Block {
    const char* source;
    std::string key, plain, cipher;
  };
  const std::vector<Block> blocks = {
      {"FIPS-197 C.1 AES-128", "000102030405060708090a0b0c0d0e0f",
       "00112233445566778899aabbccddeeff", "69c4e0d86a7b0430d8cdb78070b4c55a"},
      {"FIPS-197 C.2 AES-192", "000102030405060708090a0b0c0d0e0f1011121314151617",
       "00112233445566778899aabbccddeeff", "dda97ca4864cdfe06eaf70a0ec0d7191"},
      {"FIPS-197 C.3 AES-256", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
       "00112233445566778899aabbccddeeff", "8ea2b7ca516745bfeafc49904b496089"},
      {"2022 UDP separate header", "000102030405060708090a0b0c0d0e0f",
       "01020304050607080000000000000000", "18ba69bb4661fee5a7cc9ec1a731e278"},
      {"SIP023 UDP identity header", "000102030405060708090a0b0c0d0e0f",
       "9a48482a8c27192c036becf02bed2372", "fc75266e5be59a6ca2ff5517b80bad7d"},
  };
  for (const AeadProvider* provider : providersUnderTest()) {
    for (const Block& b : blocks) {
      SCOPED_TRACE(label(provider) + ": " + b.source);
      BlockCipherPtr aes = provider->createAes(unhex(b.key));
      ASSERT_NE(aes, nullptr);
      std::vector<uint8_t> plain = unhex(b.plain);
      std::array<uint8_t, 16> out{};
      ASSERT_TRUE(aes->encrypt(BlockCipher::InBlock(plain.data(), 16), out));
      EXPECT_EQ(hex(out), b.cipher);
      std::array<uint8_t, 16> back{};
      ASSERT_TRUE(aes->decrypt(out, back));
      EXPECT_EQ(hex(back), b.plain);
      // In place, both ways, twice (no state carried between blocks).
      std::array<uint8_t, 16> buf{};
      std::copy(plain.begin(), plain.end(), buf.begin());
      for (int round = 0; round < 2; ++round) {
        ASSERT_TRUE(aes->encrypt(buf, buf));
        EXPECT_EQ(hex(buf), b.cipher);
        ASSERT_TRUE(aes->decrypt(buf, buf));
        EXPECT_EQ(hex(buf), b.plain);
      }
    }
  }
}

TEST(AeadProviderTest, AesBlockRejectsOtherKeySizesAndProvidersAgree) {
  std::mt19937 rng(5);
  const auto providers = providersUnderTest();
  for (const AeadProvider* p : providers) {
    for (size_t bad : {0u, 15u, 17u, 31u, 33u}) {
      EXPECT_EQ(p->createAes(std::vector<uint8_t>(bad, 1)), nullptr) << label(p) << " " << bad;
    }
  }
  for (size_t key_len : {16u, 24u, 32u}) {
    std::vector<uint8_t> key(key_len);
    for (auto& x : key) x = static_cast<uint8_t>(rng());
    std::array<uint8_t, 16> block{};
    for (auto& x : block) x = static_cast<uint8_t>(rng());
    std::array<uint8_t, 16> first{};
    ASSERT_TRUE(providers[0]->createAes(key)->encrypt(block, first));
    for (const AeadProvider* p : providers) {
      std::array<uint8_t, 16> out{};
      ASSERT_TRUE(p->createAes(key)->encrypt(block, out));
      EXPECT_EQ(out, first) << label(p) << " " << key_len;
    }
  }
}

TEST(AeadProviderTest, RejectsWrongKeySizeAndShortInput) {
  for (const AeadProvider* p : providersUnderTest()) {
    EXPECT_EQ(p->create(AeadAlgorithm::Aes128Gcm, std::vector<uint8_t>(15)), nullptr);
    EXPECT_EQ(p->create(AeadAlgorithm::ChaCha20Poly1305, std::vector<uint8_t>(16)), nullptr);
    AeadPtr aead = p->create(AeadAlgorithm::Aes128Gcm, std::vector<uint8_t>(16));
    ASSERT_NE(aead, nullptr);
    uint8_t out[16];
    EXPECT_FALSE(aead->open(std::vector<uint8_t>(12), {}, std::vector<uint8_t>(15), out));
    EXPECT_FALSE(aead->rekey(std::vector<uint8_t>(32)));
  }
}

}  // namespace
}  // namespace shadowrelay::crypto
