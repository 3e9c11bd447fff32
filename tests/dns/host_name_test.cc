// SPDX-License-Identifier: Apache-2.0
#include "dns/host_name.h"

#include <string>

#include "gtest/gtest.h"

namespace shadowrelay::dns {
namespace {

std::string repeat(char c, size_t n) { return std::string(n, c); }

TEST(HostNameTest, AcceptsOrdinaryNames) {
  for (const char* name : {"a", "example.com", "example.com.", "xn--bcher-kva.example",
                           "_dmarc.example.org", "a-b.c_d.e9", "localhost", "1.2.3.4.5"}) {
    EXPECT_TRUE(isValidHostName(name)) << name;
  }
}

TEST(HostNameTest, RejectsMalformedNames) {
  for (const char* name : {"", ".", "..", ".a", "a..b", "a b", "a/b", "a:b", "a\tb", "a*b",
                           "caf\xc3\xa9.fr", "a.b..", "a@b"}) {
    EXPECT_FALSE(isValidHostName(name)) << name;
  }
  EXPECT_FALSE(isValidHostName(absl::string_view("a\0b", 3)));
}

TEST(HostNameTest, EnforcesLabelAndNameLengths) {
  EXPECT_TRUE(isValidHostName(repeat('a', 63) + ".com"));
  EXPECT_FALSE(isValidHostName(repeat('a', 64) + ".com"));
  // 4 labels of 63 + 3 dots = 255 > 253; 253 exactly is fine, with or without trailing dot.
  const std::string l63 = repeat('a', 63);
  EXPECT_FALSE(isValidHostName(l63 + "." + l63 + "." + l63 + "." + l63));
  const std::string n253 = l63 + "." + l63 + "." + l63 + "." + repeat('b', 61);
  ASSERT_EQ(n253.size(), 253u);
  EXPECT_TRUE(isValidHostName(n253));
  EXPECT_TRUE(isValidHostName(n253 + "."));
  EXPECT_FALSE(isValidHostName(n253 + "b"));
}

TEST(HostNameTest, NormalizesCaseAndTrailingDot) {
  EXPECT_EQ(normalizeHostName("WWW.Example.COM."), "www.example.com");
  EXPECT_EQ(normalizeHostName("a_b-C"), "a_b-c");
}

}  // namespace
}  // namespace shadowrelay::dns
