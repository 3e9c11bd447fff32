// SPDX-License-Identifier: Apache-2.0
#include "crypto/key_derivation.h"

#include "crypto/method.h"
#include "gtest/gtest.h"
#include "tests/testing/hex.h"

namespace shadowrelay::crypto {
namespace {

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

}  // namespace
}  // namespace shadowrelay::crypto
