// SPDX-License-Identifier: Apache-2.0
#include "crypto/providers.h"

#include "gtest/gtest.h"

namespace shadowrelay::crypto {
namespace {

TEST(ProvidersTest, ParseChoiceNamesTheField) {
  EXPECT_EQ(*parseProviderChoice("auto"), ProviderChoice::Auto);
  EXPECT_EQ(*parseProviderChoice("OpenSSL"), ProviderChoice::OpenSsl);
  EXPECT_EQ(*parseProviderChoice("boringssl"), ProviderChoice::BoringSsl);
  auto bad = parseProviderChoice("nss");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("crypto-provider"), std::string::npos);
}

TEST(ProvidersTest, OpensslChoiceUsesOpensslEverywhere) {
  auto p = CryptoProviders::create(ProviderChoice::OpenSsl);
  ASSERT_TRUE(p.ok()) << p.status();
  for (const MethodInfo& m : allMethods()) {
    EXPECT_EQ((*p)->providerFor(m).name(), "openssl");
  }
  EXPECT_EQ((*p)->available().size(), 1u);
}

#if !defined(SHADOWRELAY_SANITIZER)
TEST(ProvidersTest, BoringsslChoiceUsesThePlugin) {
  auto p = CryptoProviders::create(ProviderChoice::BoringSsl);
  ASSERT_TRUE(p.ok()) << p.status();
  for (const MethodInfo& m : allMethods()) {
    EXPECT_EQ((*p)->providerFor(m).name(), "boringssl");
  }
}

TEST(ProvidersTest, AutoMeasuresAndPicksTheFasterOrOpenssl) {
  auto p = CryptoProviders::create(ProviderChoice::Auto);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ((*p)->available().size(), 2u);
  for (const MethodInfo& m : allMethods()) {
    const double ossl = (*p)->measuredThroughput(m.algorithm, "openssl");
    const double bssl = (*p)->measuredThroughput(m.algorithm, "boringssl");
    ASSERT_GT(ossl, 0);
    ASSERT_GT(bssl, 0);
    const absl::string_view chosen = (*p)->providerFor(m).name();
    EXPECT_EQ(chosen, bssl > ossl * 1.05 ? "boringssl" : "openssl") << m.name;
  }
  EXPECT_EQ((*p)->notes().size(), 5u);
}

TEST(ProvidersTest, MissingPluginIsAClearErrorForBoringsslAndANoteForAuto) {
  auto b = CryptoProviders::create(ProviderChoice::BoringSsl, "/nonexistent/plugin.so");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("/nonexistent/plugin.so"), std::string::npos);
  auto a = CryptoProviders::create(ProviderChoice::Auto, "/nonexistent/plugin.so");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->available().size(), 1u);
  ASSERT_FALSE((*a)->notes().empty());
}
#endif

}  // namespace
}  // namespace shadowrelay::crypto
