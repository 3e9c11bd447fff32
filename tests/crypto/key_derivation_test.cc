// SPDX-License-Identifier: Apache-2.0
#include "crypto/key_derivation.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "crypto/method.h"
#include "gtest/gtest.h"
#include "tests/crypto/vectors2022.h"
#include "tests/testing/hex.h"

namespace shadowrelay::crypto {
namespace {

using testing::bytesOf;
using testing::hex;
using testing::range;
using testing::unhex;

// ../shared/vectors/vectors.txt §1, cross-checked by `openssl enc -nosalt -md md5 -P`.
TEST(KeyDerivationTest, EvpBytesToKeyMatchesSharedVectors) {
  EXPECT_EQ(hex(evpBytesToKey("foobar", 16).bytes()), "3858f62230ac3c915f300c664312c63f");
  EXPECT_EQ(hex(evpBytesToKey("foobar", 24).bytes()),
            "3858f62230ac3c915f300c664312c63f568378529614d22d");
  EXPECT_EQ(hex(evpBytesToKey("foobar", 32).bytes()),
            "3858f62230ac3c915f300c664312c63f568378529614d22ddb49237d2f60bfdf");
  EXPECT_EQ(hex(evpBytesToKey("barfoo!", 32).bytes()),
            "b3adc47839e047eb228870526dc8fc30b347287ffca3045dcea06b3fdf090acb");
  EXPECT_EQ(hex(evpBytesToKey("password", 32).bytes()),
            "5f4dcc3b5aa765d61d8327deb882cf992b95990a9151374abd8ff8c5a7a0fe08");
}

// RFC 5869 Appendix A.4 (test case 4, SHA-1) and A.7 (test case 7, SHA-1, no salt).
TEST(KeyDerivationTest, HkdfSha1Rfc5869) {
  std::vector<uint8_t> okm(42);
  ASSERT_TRUE(hkdfSha1(std::vector<uint8_t>(11, 0x0b), unhex("000102030405060708090a0b0c"),
                       unhex("f0f1f2f3f4f5f6f7f8f9"), okm));
  EXPECT_EQ(hex(okm),
            "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896");
  ASSERT_TRUE(hkdfSha1(std::vector<uint8_t>(22, 0x0c), {}, {}, okm));
  EXPECT_EQ(hex(okm),
            "2c91117204d745f3500d636a62f64f0ab3bae548aa53d423b0d1f27ebba6f5e5673a081d70cce7acfc48");
}

// RFC 5869 A.5 (test case 5, SHA-1, longer inputs: the 80-byte salt is an HMAC key longer than
// a SHA-1 block) and A.6 (test case 6, SHA-1, zero-length salt and info).
TEST(KeyDerivationTest, HkdfSha1Rfc5869LongAndEmptyInputs) {
  std::vector<uint8_t> okm(82);
  ASSERT_TRUE(hkdfSha1(range(0x00, 80), range(0x60, 80), range(0xb0, 80), okm));
  EXPECT_EQ(hex(okm),
            "0bd770a74d1160f7c9f12cd5912a06ebff6adcae899d92191fe4305673ba2ffe"
            "8fa3f1a4e5ad79f3f334b3b202b2173c486ea37ce3d397ed034c7f9dfeb15c5e"
            "927336d0441f4c4300e2cff0d0900b52d3b4");
  okm.resize(42);
  ASSERT_TRUE(hkdfSha1(std::vector<uint8_t>(22, 0x0b), {}, {}, okm));
  EXPECT_EQ(hex(okm),
            "0ac1af7002b3d761d1e55298da9d0506b9ae52057220a306e07b6b87e8df21d0ea00033de03984d34918");
}

// Against OpenSSL's own HKDF (EVP_KDF), for salt lengths around the SHA-1 block size and output
// lengths around the hash size.
TEST(KeyDerivationTest, HkdfSha1MatchesOpensslKdf) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  ASSERT_NE(kdf, nullptr);
  for (size_t salt_len : {0u, 1u, 16u, 32u, 63u, 64u, 65u, 100u}) {
    for (size_t out_len : {1u, 16u, 20u, 21u, 32u, 64u}) {
      const std::vector<uint8_t> ikm = range(static_cast<uint8_t>(salt_len), 32);
      const std::vector<uint8_t> salt = range(0x40, salt_len);
      const std::vector<uint8_t> info = {'s', 's', '-', 's', 'u', 'b', 'k', 'e', 'y'};
      std::vector<uint8_t> ours(out_len);
      ASSERT_TRUE(hkdfSha1(ikm, salt, info, ours));
      EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
      ASSERT_NE(ctx, nullptr);
      char digest[] = "SHA1";
      std::vector<OSSL_PARAM> params = {
          OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
          OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()),
                                            ikm.size()),
          OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                            const_cast<uint8_t*>(info.data()), info.size())};
      if (!salt.empty()) {  // OpenSSL refuses an empty one; absent means zeros (RFC 5869)
        params.push_back(OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size()));
      }
      params.push_back(OSSL_PARAM_construct_end());
      std::vector<uint8_t> theirs(out_len);
      ASSERT_EQ(EVP_KDF_derive(ctx, theirs.data(), theirs.size(), params.data()), 1);
      EVP_KDF_CTX_free(ctx);
      EXPECT_EQ(hex(ours), hex(theirs)) << "salt " << salt_len << " out " << out_len;
    }
  }
  EVP_KDF_free(kdf);
}

// vectors.txt §2.
TEST(KeyDerivationTest, SessionSubkeyMatchesSharedVectors) {
  std::vector<uint8_t> sub16(16);
  ASSERT_TRUE(sessionSubkey(evpBytesToKey("foobar", 16).bytes(), range(0, 16), sub16));
  EXPECT_EQ(hex(sub16), "e59e945699e8699144c332b9e641ef65");
  std::vector<uint8_t> sub32(32);
  ASSERT_TRUE(sessionSubkey(evpBytesToKey("foobar", 32).bytes(), range(0, 32), sub32));
  EXPECT_EQ(hex(sub32), "c4f0e9818348b2f30188d82b37a4cddc9f5ea531070ec67225160209faff573c");
}

TEST(KeyDerivationTest, Base64KeyMustMatchMethodSize) {
  const MethodInfo& aes128 = **findMethod("aes-128-gcm");
  auto ok = decodeBase64Key("AAECAwQFBgcICQoLDA0ODw==", aes128);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(hex(ok->bytes()), "000102030405060708090a0b0c0d0e0f");
  EXPECT_TRUE(decodeBase64Key("AAECAwQFBgcICQoLDA0ODw", aes128).ok());  // padding optional
  auto url = decodeBase64Key("-_79_Pv6-fj39vX08_Lx8A", aes128);          // URL-safe alphabet
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(hex(url->bytes()), "fbfefdfcfbfaf9f8f7f6f5f4f3f2f1f0");
  auto wrong = decodeBase64Key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", aes128);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("needs 16"), std::string::npos);
  EXPECT_FALSE(decodeBase64Key("not base64 !!", aes128).ok());
  EXPECT_FALSE(decodeBase64Key("", aes128).ok());
}

TEST(KeyDerivationTest, MasterKeyForNeedsExactlyOneSecret) {
  const MethodInfo& m = **findMethod("aes-256-gcm");
  EXPECT_FALSE(masterKeyFor(m, "", "").ok());
  EXPECT_FALSE(masterKeyFor(m, "pw", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").ok());
  EXPECT_EQ(masterKeyFor(m, "foobar", "")->size(), 32u);
  const std::string generated = randomBase64Key(32);
  auto key = masterKeyFor(m, "", generated);
  ASSERT_TRUE(key.ok());
  EXPECT_NE(randomBase64Key(32), generated);
}

// Public SIP022 vectors (PROTOCOL.md §2.8): BLAKE3 derive_key.
TEST(KeyDerivationTest, Blake3DeriveKeyPublicVectors) {
  std::vector<uint8_t> material = unhex(
      "2dcded4f1d0163a649fdf0b03b1dc9bc5d08fda9e1c0904ee69dbe140e5571ee"   // key (base64 Lc3t...)
      "de814ed15c8bc862389c537433d3feeb6bcf343fcbeaff088a781a3c95936c90");  // salt (base64 3oFO...)
  std::vector<uint8_t> out(32);
  blake3DeriveKey("shadowsocks 2022 session subkey", material, out);
  EXPECT_EQ(hex(out), "11d344fb853c7559c74f4fa9a001432b66dd9707eb1d3eb5b1436bf5660f87e1");
  std::vector<uint8_t> sub16(16);
  std::vector<uint8_t> psk_salt = range(0, 16);
  std::vector<uint8_t> salt = range(0x10, 16);
  psk_salt.insert(psk_salt.end(), salt.begin(), salt.end());
  blake3DeriveKey("shadowsocks 2022 session subkey", psk_salt, sub16);
  EXPECT_EQ(hex(sub16), "bc32fb8d5205f7b84f9691dfb9f04ff3");
}

// ---- Shadowsocks 2022 (PROTOCOL.md §2.2, §2.3, §2.7; values from vectors.txt §4) ----

using testing::method2022;

constexpr const char* kPsk16 = "AAECAwQFBgcICQoLDA0ODw==";
constexpr const char* kPsk32 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
constexpr const char* kUpsk16 = "//79/Pv6+fj39vX08/Lx8A==";

std::vector<uint8_t> bytes(const MasterKey& key) {
  return {key.bytes().begin(), key.bytes().end()};
}

TEST(KeyDerivationTest, PskIsStandardBase64OfExactlyTheKeySize) {
  const MethodInfo& aes128 = method2022("2022-blake3-aes-128-gcm");
  const MethodInfo& aes256 = method2022("2022-blake3-aes-256-gcm");
  auto psk16 = decodePsk(kPsk16, aes128);
  ASSERT_TRUE(psk16.ok()) << psk16.status();
  EXPECT_EQ(hex(psk16->bytes()), "000102030405060708090a0b0c0d0e0f");
  auto psk32 = decodePsk(kPsk32, aes256);
  ASSERT_TRUE(psk32.ok()) << psk32.status();
  EXPECT_EQ(bytes(*psk32), range(0, 32));
  auto upsk = decodePsk(kUpsk16, aes128);
  ASSERT_TRUE(upsk.ok()) << upsk.status();
  EXPECT_EQ(hex(upsk->bytes()), "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0");
  EXPECT_EQ(hex(decodePsk("AAECAwQFBgcICQoLDA0ODw", aes128)->bytes()),  // padding optional
            "000102030405060708090a0b0c0d0e0f");
  // A 32-byte key for a 16-byte method and the other way round: the error names the length.
  for (const auto& [text, m, want] :
       {std::tuple{kPsk32, &aes128, "needs 16 (24 base64 characters"},
        std::tuple{kPsk16, &aes256, "needs 32 (44 base64 characters"}}) {
    auto wrong = decodePsk(text, *m);
    ASSERT_FALSE(wrong.ok());
    const std::string msg(wrong.status().message());
    EXPECT_NE(msg.find(want), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string(m->name)), std::string::npos) << msg;
  }
  EXPECT_FALSE(decodePsk("AAECAwQFBgcICQoLDA0O", aes128).ok());   // 15 bytes
  EXPECT_FALSE(decodePsk("-_79_Pv6-fj39vX08_Lx8A", aes128).ok());  // URL-safe alphabet
  EXPECT_FALSE(decodePsk("", aes128).ok());
  EXPECT_FALSE(decodePsk("not base64 !!", aes128).ok());
  auto list = decodePsk(std::string(kPsk16) + ":" + kUpsk16, aes128);
  ASSERT_FALSE(list.ok());
  EXPECT_NE(list.status().message().find("iPSK"), std::string::npos);
}

TEST(KeyDerivationTest, PskListParsesIpskThenUpsk) {
  const MethodInfo& aes128 = method2022("2022-blake3-aes-128-gcm");
  auto one = parsePskList(kPsk16, aes128);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(bytes((*one)[0]), range(0, 16));
  auto three = parsePskList(std::string(kUpsk16) + ":" + kPsk16 + ":" + kUpsk16, aes128);
  ASSERT_TRUE(three.ok()) << three.status();
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ(hex((*three)[0].bytes()), "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0");
  EXPECT_EQ(bytes((*three)[1]), range(0, 16));
  EXPECT_EQ(hex((*three)[2].bytes()), "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0");
  // Which key is wrong, and why.
  auto bad = parsePskList(std::string(kPsk16) + ":" + kPsk32, aes128);
  ASSERT_FALSE(bad.ok());
  const std::string msg(bad.status().message());
  EXPECT_NE(msg.find("key 2 of 2 (uPSK)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 16"), std::string::npos) << msg;
  EXPECT_FALSE(parsePskList(std::string(kPsk16) + "::" + kUpsk16, aes128).ok());
  EXPECT_FALSE(parsePskList(std::string(kPsk16) + ":", aes128).ok());
  EXPECT_FALSE(parsePskList("", aes128).ok());
  // No identity headers for ChaCha (§2.6).
  const MethodInfo& chacha = method2022("2022-blake3-chacha20-poly1305");
  EXPECT_TRUE(parsePskList(kPsk32, chacha).ok());
  auto chacha_list = parsePskList(std::string(kPsk32) + ":" + kPsk32, chacha);
  ASSERT_FALSE(chacha_list.ok());
  EXPECT_NE(chacha_list.status().message().find("AES"), std::string::npos);
}

// §2.2: "No EVP_BytesToKey or any other password stretching is allowed".
TEST(KeyDerivationTest, MasterKeyFor2022MethodsIsThePskNeverEvpBytesToKey) {
  const MethodInfo& m = method2022("2022-blake3-aes-256-gcm");
  auto from_password = masterKeyFor(m, kPsk32, "");
  ASSERT_TRUE(from_password.ok()) << from_password.status();
  EXPECT_EQ(bytes(*from_password), range(0, 32));
  auto from_key = masterKeyFor(m, "", kPsk32);
  ASSERT_TRUE(from_key.ok()) << from_key.status();
  EXPECT_EQ(bytes(*from_key), range(0, 32));
  EXPECT_FALSE(masterKeyFor(m, "foobar", "").ok());
  EXPECT_FALSE(masterKeyFor(m, "", "").ok());
  EXPECT_FALSE(masterKeyFor(m, kPsk32, kPsk32).ok());
}

TEST(KeyDerivationTest, SessionSubkey2022SharedVectors) {
  std::vector<uint8_t> sub16(16);
  sessionSubkey2022(range(0, 16), range(0x10, 16), sub16);  // aes-128 TCP, client salt
  EXPECT_EQ(hex(sub16), "bc32fb8d5205f7b84f9691dfb9f04ff3");
  sessionSubkey2022(range(0, 16), range(0x40, 16), sub16);  // aes-128 TCP, server salt
  EXPECT_EQ(hex(sub16), "80e542bc94fbfe0078a6469c1e09a7cf");
  sessionSubkey2022(range(0, 16), unhex("0102030405060708"), sub16);  // UDP session ID
  EXPECT_EQ(hex(sub16), "b8473b44792f673ee36a405dfa755cc4");
  std::vector<uint8_t> upsk = unhex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0");
  sessionSubkey2022(upsk, unhex("0102030405060708"), sub16);  // SIP023 UDP body key
  EXPECT_EQ(hex(sub16), "fe38e988e2835b762419032647148386");
  std::vector<uint8_t> sub32(32);
  sessionSubkey2022(range(0, 32), range(0x20, 32), sub32);  // aes-256 and chacha20 TCP
  EXPECT_EQ(hex(sub32), "374fca03e4dae7f998fd7e59c1edfcc8e3197f4db1c19ca1671be3b66a92ddda");
}

// The public vectors of §2.8 (Zmax0/urban-spork AEAD2022TestCase), through our own base64.
TEST(KeyDerivationTest, Blake3PublicVectorsThroughThe2022Functions) {
  const MethodInfo& m = method2022("2022-blake3-aes-256-gcm");
  auto key = decodePsk("Lc3tTx0BY6ZJ/fCwOx3JvF0I/anhwJBO5p2+FA5Vce4=", m);
  auto salt = decodePsk("3oFO0VyLyGI4nFN0M9P+62vPND/L6v8IingaPJWTbJA=", m);
  auto want = decodePsk("EdNE+4U8dVnHT0+poAFDK2bdlwfrHT61sUNr9WYPh+E=", m);
  ASSERT_TRUE(key.ok() && salt.ok() && want.ok());
  std::vector<uint8_t> out(32);
  sessionSubkey2022(key->bytes(), salt->bytes(), out);
  EXPECT_EQ(out, bytes(*want));
  EXPECT_EQ(hex(out), "11d344fb853c7559c74f4fa9a001432b66dd9707eb1d3eb5b1436bf5660f87e1");
  auto want2 = decodePsk("nb91ZIjdNzFcPmGRS3Lg7m+muVqat549+RSDluyVN4c=", m);
  ASSERT_TRUE(want2.ok());
  identitySubkey(bytesOf("Personal search-enabled assistant for programmers"), {}, out);
  EXPECT_EQ(out, bytes(*want2));
}

TEST(KeyDerivationTest, IdentitySubkeyAndUserHashSharedVectors) {
  std::vector<uint8_t> id16(16);
  identitySubkey(range(0, 16), range(0x10, 16), id16);
  EXPECT_EQ(hex(id16), "c6929b0d4d713bf21148dfc4f34dd083");
  EXPECT_EQ(hex(userHash(unhex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0"))),
            "9b4a4b2e89211e24036becf02bed2372");
  // The identity context is not the session context, and the salt takes part.
  std::vector<uint8_t> session16(16);
  sessionSubkey2022(range(0, 16), range(0x10, 16), session16);
  EXPECT_NE(id16, session16);
  std::vector<uint8_t> other_salt(16);
  identitySubkey(range(0, 16), range(0x11, 16), other_salt);
  EXPECT_NE(id16, other_salt);
}

}  // namespace
}  // namespace shadowrelay::crypto
