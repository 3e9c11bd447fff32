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

TEST(SsUriTest, Shadowsocks2022IsPlainAndPercentEncoded) {
  // SIP002's own example (PROTOCOL.md §3.1): no base64 for 2022 methods.
  EXPECT_EQ(makeSsUri("2022-blake3-aes-256-gcm", "YctPZ6U7xPPcU+gp3u+0tx/tRizJN9K8y+uKlW2qjlI=",
                      "192.168.100.1", 8888, "Example3"),
            "ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D"
            "@192.168.100.1:8888#Example3");
  // SIP023: the password iPSK:uPSK, its ':' encoded like the rest of the password.
  EXPECT_EQ(makeSsUri("2022-blake3-aes-128-gcm",
                      "AAECAwQFBgcICQoLDA0ODw==:EBESExQVFhcYGRobHB0eHw==", "::1", 8388, "alice"),
            "ss://2022-blake3-aes-128-gcm:AAECAwQFBgcICQoLDA0ODw%3D%3D%3AEBESExQVFhcYGRobHB0eHw%3D"
            "%3D@[::1]:8388#alice");
}

TEST(SsUriTest, ParsesWhatItMakesInBothForms) {
  const SsUri cases[] = {
      {"aes-128-gcm", "test", "192.168.100.1", 8888, "Example1", ""},
      {"chacha20-ietf-poly1305", "p@ss:w/rd?#%", "2001:db8::1", 443, "my server",
       "obfs-local;obfs=http"},
      {"2022-blake3-aes-128-gcm", "AAECAwQFBgcICQoLDA0ODw==:EBESExQVFhcYGRobHB0eHw==",
       "relay.example", 8388, "", ""},
      {"2022-blake3-chacha20-poly1305", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "::1", 1,
       "x", "v2ray-plugin;tls;host=x.test"},
  };
  for (const SsUri& want : cases) {
    const std::string uri =
        makeSsUri(want.method, want.password, want.host, want.port, want.tag, want.plugin);
    auto got = parseSsUri(uri);
    ASSERT_TRUE(got.ok()) << uri << ": " << got.status();
    EXPECT_EQ(*got, want) << uri;
  }
}

TEST(SsUriTest, ParsesTheFormsOthersWrite) {
  // The spec's examples: base64url, a plugin-free query and "/" before it, the plain form with
  // a literal ':' in the password, padding written as %3D, standard base64.
  auto a = parseSsUri("ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888/?foo=bar#Example1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, (SsUri{"aes-128-gcm", "test", "192.168.100.1", 8888, "Example1", ""}));
  auto b = parseSsUri(
      "ss://2022-blake3-aes-128-gcm:AAECAwQFBgcICQoLDA0ODw%3D%3D:EBESExQVFhcYGRob"
      "HB0eHw%3D%3D@h:1");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->password, "AAECAwQFBgcICQoLDA0ODw==:EBESExQVFhcYGRobHB0eHw==");
  auto c = parseSsUri("ss://YWVzLTEyOC1nY206dGVzdA%3D%3D@h:2");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->password, "test");
  auto d = parseSsUri("ss://" + absl::Base64Escape("aes-256-gcm:a+b/c") + "@h:3");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->password, "a+b/c");
  // SIP002's plugin example: "name;opts", percent-decoded.
  auto e = parseSsUri("ss://YWVzLTEyOC1nY206dGVzdA@h:1/?plugin=obfs-local%3Bobfs%3Dhttp#t");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->plugin, "obfs-local;obfs=http");
  EXPECT_EQ(e->tag, "t");
  EXPECT_EQ(parseSsUri(makeSsUri("aes-128-gcm", "pw", "h", 1, "", "obfs-local;obfs=tls"))
                ->plugin,
            "obfs-local;obfs=tls");
}

TEST(SsUriTest, RefusesWhatItCannotUseNamingThePart) {
  const std::pair<const char*, const char*> cases[] = {
      {"http://YWVzLTEyOC1nY206dGVzdA@h:1", "scheme"},
      {"ss://YWVzLTEyOC1nY206dGVzdA@h", "port: missing"},
      {"ss://YWVzLTEyOC1nY206dGVzdA@h:0", "port: not 1..65535"},
      {"ss://YWVzLTEyOC1nY206dGVzdA@h:70000", "port: not 1..65535"},
      {"ss://YWVzLTEyOC1nY206dGVzdA@::1:80", "host: an IPv6 address needs brackets"},
      {"ss://YWVzLTEyOC1nY206dGVzdA@[::1:80", "host: unclosed ["},
      {"ss://YWVzLTEyOC1nY206dGVzdA@:80", "host: empty"},
      {"ss://h:1", "userinfo: missing"},
      {"ss://!!!@h:1", "userinfo: neither"},
      {"ss://YWVzLTEyOC1nY20@h:1", "userinfo: no ':'"},
      {"ss://m:%zz@h:1", "userinfo: bad percent-encoding"},
      {"ss://m:@h:1", "password: empty"},
      {"ss://YWVzLTEyOC1nY206dGVzdA@h:1/?plugin=obfs-local%zz", "plugin: bad percent"},
  };
  for (const auto& [uri, part] : cases) {
    auto got = parseSsUri(uri);
    ASSERT_FALSE(got.ok()) << uri;
    EXPECT_NE(std::string(got.status().message()).find(part), std::string::npos)
        << uri << ": " << got.status();
  }
}

}  // namespace
}  // namespace shadowrelay::relay
