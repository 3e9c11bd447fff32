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
  auto m = findMethod("rc4-md5");
  ASSERT_FALSE(m.ok());
  const std::string msg(m.status().message());
  EXPECT_NE(msg.find("rc4-md5"), std::string::npos);
  EXPECT_NE(msg.find("aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-ietf-poly1305, "
                     "xchacha20-ietf-poly1305"),
            std::string::npos);
}

}  // namespace
}  // namespace shadowrelay::crypto
