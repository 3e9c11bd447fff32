// SPDX-License-Identifier: Apache-2.0
#include "relay/ss_uri.h"

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

TEST(SsUriTest, Sip002Base64urlUserinfoWithoutPadding) {
  // PROTOCOL.md §3.1: YWVzLTEyOC1nY206dGVzdA decodes to aes-128-gcm:test.
  EXPECT_EQ(makeSsUri("aes-128-gcm", "test", "192.168.100.1", 8888, "Example1"),
            "ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888#Example1");
}

TEST(SsUriTest, PluginQueryAsSip002Shows) {
  // SIP002's own example: plugin=obfs-local%3Bobfs%3Dhttp, after a "/".
  EXPECT_EQ(makeSsUri("rc4-md5", "passwd", "192.168.100.1", 8888, "Example2",
                      "obfs-local;obfs=http"),
            "ss://cmM0LW1kNTpwYXNzd2Q@192.168.100.1:8888/?plugin=obfs-local%3Bobfs%3Dhttp"
            "#Example2");
  EXPECT_EQ(makeSsUri("rc4-md5", "passwd", "192.168.100.1", 8888, "", "obfs-local"),
            "ss://cmM0LW1kNTpwYXNzd2Q@192.168.100.1:8888/?plugin=obfs-local");
}

TEST(SsUriTest, Ipv6HostAndTagEncoding) {
  const std::string uri = makeSsUri("chacha20-ietf-poly1305", "p@ss:w/rd?", "2001:db8::1", 443,
                                    "my server");
  EXPECT_EQ(uri.rfind("ss://", 0), 0u);
  EXPECT_NE(uri.find("@[2001:db8::1]:443#my%20server"), std::string::npos) << uri;
  const std::string userinfo = uri.substr(5, uri.find('@') - 5);
  EXPECT_EQ(userinfo.find('='), std::string::npos);
  std::string decoded;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(userinfo, &decoded));
  EXPECT_EQ(decoded, "chacha20-ietf-poly1305:p@ss:w/rd?");
}

}  // namespace
}  // namespace shadowrelay::relay
