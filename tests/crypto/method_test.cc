// SPDX-License-Identifier: Apache-2.0
#include "crypto/method.h"

#include "gtest/gtest.h"

namespace shadowrelay::crypto {
namespace {

TEST(MethodTest, AllFiveMethodsWithSizes) {
  ASSERT_EQ(allMethods().size(), 5u);
  struct Want {
    const char* name;
    size_t key, nonce;
  };
  for (const Want& w : {Want{"aes-128-gcm", 16, 12}, Want{"aes-192-gcm", 24, 12},
                        Want{"aes-256-gcm", 32, 12}, Want{"chacha20-ietf-poly1305", 32, 12},
                        Want{"xchacha20-ietf-poly1305", 32, 24}}) {
    auto m = findMethod(w.name);
    ASSERT_TRUE(m.ok()) << w.name;
    EXPECT_EQ((*m)->key_size, w.key);
    EXPECT_EQ((*m)->salt_size, w.key);
    EXPECT_EQ((*m)->nonce_size, w.nonce);
    EXPECT_EQ((*m)->tag_size, 16u);
  }
}

TEST(MethodTest, CaseInsensitiveAndIanaNames) {
  EXPECT_EQ((*findMethod("AES-256-GCM"))->name, "aes-256-gcm");
  EXPECT_EQ((*findMethod("AEAD_CHACHA20_POLY1305"))->name, "chacha20-ietf-poly1305");
}

TEST(MethodTest, UnknownMethodErrorListsSupportedOnes) {
  auto m = findMethod("rc2-cfb");
  ASSERT_FALSE(m.ok());
  const std::string msg(m.status().message());
  EXPECT_NE(msg.find("rc2-cfb"), std::string::npos);
  EXPECT_NE(msg.find("aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-ietf-poly1305, "
                     "xchacha20-ietf-poly1305"),
            std::string::npos);
}

// PROTOCOL.md §2.1: PSK = key = salt size; the TCP AEAD with a 12-byte nonce.
TEST(MethodTest, The2022MethodsWithSizesAndEdition) {
  struct Want {
    const char* name;
    AeadAlgorithm algorithm;
    size_t key;
    bool separate_header;
  };
  for (const Want& w : {Want{"2022-blake3-aes-128-gcm", AeadAlgorithm::Aes128Gcm, 16, true},
                        Want{"2022-blake3-aes-256-gcm", AeadAlgorithm::Aes256Gcm, 32, true},
                        Want{"2022-blake3-chacha20-poly1305", AeadAlgorithm::ChaCha20Poly1305, 32,
                             false}}) {
    SCOPED_TRACE(w.name);
    auto m = findAnyMethod(w.name);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ((*m)->edition, Edition::Aead2022);
    EXPECT_EQ((*m)->algorithm, w.algorithm);
    EXPECT_EQ((*m)->key_size, w.key);
    EXPECT_EQ((*m)->salt_size, w.key);
    EXPECT_EQ((*m)->nonce_size, 12u);
    EXPECT_EQ((*m)->tag_size, 16u);
    EXPECT_EQ(usesSeparateHeader(**m), w.separate_header);
    EXPECT_EQ(usesXChaChaPackets(**m), !w.separate_header);
  }
  EXPECT_EQ(findAnyMethod("2022-BLAKE3-AES-128-GCM").value()->name, "2022-blake3-aes-128-gcm");
  // Not offered: no provider has ChaCha8 or ChaCha12.
  EXPECT_FALSE(findAnyMethod("2022-blake3-chacha8-poly1305").ok());
  EXPECT_FALSE(findAnyMethod("2022-blake3-chacha12-poly1305").ok());
}

TEST(MethodTest, TableHoldsEveryEditionAndAllMethodsOnlyThe2017Ones) {
  ASSERT_EQ(methodTable().size(), 22u);
  for (size_t i = 0; i < allMethods().size(); ++i) {
    EXPECT_EQ(&allMethods()[i], &methodTable()[i]);
    EXPECT_EQ(allMethods()[i].edition, Edition::Aead2017);
    EXPECT_FALSE(usesSeparateHeader(allMethods()[i]));
    EXPECT_FALSE(usesXChaChaPackets(allMethods()[i]));
  }
  size_t editions2022 = 0;
  size_t streams = 0;
  for (const MethodInfo& m : methodTable()) {
    editions2022 += m.edition == Edition::Aead2022;
    streams += isStream(m);
    EXPECT_EQ(isStream(m), m.stream != StreamAlgorithm::None) << m.name;
    EXPECT_EQ(*findAnyMethod(m.name), &m);
  }
  EXPECT_EQ(editions2022, 3u);
  EXPECT_EQ(streams, 14u);
}

// Until the relay speaks 2022 (issue 14), the lookup its configuration uses must not hand it a
// 2022 method it would serve with SIP004 framing.
TEST(MethodTest, FindMethodRefuses2022MethodsAndSaysWhy) {
  auto m = findMethod("2022-blake3-aes-256-gcm");
  ASSERT_FALSE(m.ok());
  const std::string msg(m.status().message());
  EXPECT_NE(msg.find("2022-blake3-aes-256-gcm"), std::string::npos);
  EXPECT_NE(msg.find("Shadowsocks 2022"), std::string::npos);
  EXPECT_EQ(supportedMethodList().find("2022"), std::string::npos);
}

}  // namespace
}  // namespace shadowrelay::crypto
