// SPDX-License-Identifier: Apache-2.0
#include "relay/acl/acl.h"

#include <arpa/inet.h>

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

using Route = Acl::Route;

crypto::SocksAddress name(const std::string& host) { return crypto::SocksAddress::domain(host, 80); }

crypto::SocksAddress ip(const std::string& text) {
  crypto::SocksAddress a;
  if (inet_pton(AF_INET, text.c_str(), a.ip.data()) == 1) {
    a.type = crypto::SocksAddress::Type::IPv4;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), a.ip.data()), 1) << text;
    a.type = crypto::SocksAddress::Type::IPv6;
  }
  a.port = 80;
  return a;
}

sockaddr_storage sockaddrOf(const std::string& text) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    ss.ss_family = AF_INET;
  } else {
    inet_pton(AF_INET6, text.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr);
    ss.ss_family = AF_INET6;
  }
  return ss;
}

std::shared_ptr<const Acl> parse(const std::string& text) {
  auto acl = Acl::parse(text, "test.acl");
  EXPECT_TRUE(acl.ok()) << acl.status();
  return acl.ok() ? *acl : nullptr;
}

TEST(AclTest, ProxyAllWithABypassList) {
  const auto acl = parse(R"(# China direct, the rest proxied
[proxy_all]

[bypass_list]
10.0.0.0/8
192.168.1.1
fd00::/8
(^|\.)example\.cn$
  (^|\.)direct\.test$
)");
  EXPECT_FALSE(acl->bypassByDefault());
  EXPECT_EQ(acl->ruleCount(), 5u);
  EXPECT_EQ(acl->route(ip("10.1.2.3")), Route::Bypass);
  EXPECT_EQ(acl->route(ip("192.168.1.1")), Route::Bypass);
  EXPECT_EQ(acl->route(ip("192.168.1.2")), Route::Proxy);
  EXPECT_EQ(acl->route(ip("fd12::1")), Route::Bypass);
  EXPECT_EQ(acl->route(ip("8.8.8.8")), Route::Proxy);
  EXPECT_EQ(acl->route(name("www.example.cn")), Route::Bypass);
  EXPECT_EQ(acl->route(name("EXAMPLE.CN")), Route::Bypass);  // names are case-insensitive
  EXPECT_EQ(acl->route(name("example.cn.evil.com")), Route::Proxy);
  EXPECT_EQ(acl->route(name("direct.test")), Route::Bypass);
  EXPECT_EQ(acl->route(name("google.com")), Route::Proxy);
  // A name is not resolved: the address rules say nothing about it.
  EXPECT_EQ(acl->route(name("10.0.0.1.nip.test")), Route::Proxy);
}

TEST(AclTest, BypassAllWithAProxyListAndTheBypassListWinning) {
  const auto acl = parse(R"([bypass_all]
[proxy_list]
google
1.1.1.0/24
[bypass_list]
mail\.google\.com
)");
  EXPECT_TRUE(acl->bypassByDefault());
  EXPECT_EQ(acl->route(name("www.google.com")), Route::Proxy);
  EXPECT_EQ(acl->route(name("mail.google.com")), Route::Bypass);  // in both: bypass wins
  EXPECT_EQ(acl->route(name("example.org")), Route::Bypass);
  EXPECT_EQ(acl->route(ip("1.1.1.1")), Route::Proxy);
  EXPECT_EQ(acl->route(ip("1.1.2.1")), Route::Bypass);
}

TEST(AclTest, LibevSectionAliases) {
  const auto acl = parse("[reject_all]\n[white_list]\nproxied\\.test\n[black_list]\n9.9.9.9\n");
  EXPECT_TRUE(acl->bypassByDefault());
  EXPECT_EQ(acl->route(name("proxied.test")), Route::Proxy);
  EXPECT_EQ(acl->route(ip("9.9.9.9")), Route::Bypass);
  const auto accept = parse("[accept_all]\n");
  EXPECT_FALSE(accept->bypassByDefault());
  // Rules before any section header are bypass rules, as libev reads them.
  const auto top = parse("5.5.5.5\n");
  EXPECT_EQ(top->route(ip("5.5.5.5")), Route::Bypass);
}

TEST(AclTest, OutboundBlockListByNameAndByAddress) {
  const auto acl = parse(R"([outbound_block_list]
127.0.0.0/8
::1
(^|\.)blocked\.test$
)");
  EXPECT_TRUE(acl->hasOutboundBlockList());
  EXPECT_TRUE(acl->blocksName("www.blocked.test"));
  EXPECT_FALSE(acl->blocksName("blocked.test.example"));
  auto a = sockaddrOf("127.0.0.5");
  EXPECT_TRUE(acl->blocksAddress(reinterpret_cast<sockaddr*>(&a)));
  auto b = sockaddrOf("::1");
  EXPECT_TRUE(acl->blocksAddress(reinterpret_cast<sockaddr*>(&b)));
  auto c = sockaddrOf("8.8.8.8");
  EXPECT_FALSE(acl->blocksAddress(reinterpret_cast<sockaddr*>(&c)));
  // Blocked targets are a server's business; a local's routing ignores the block list.
  EXPECT_EQ(acl->route(ip("127.0.0.5")), Route::Proxy);
}

TEST(AclTest, ErrorsNameTheFileAndTheLine) {
  auto bad_regex = Acl::parse("[bypass_list]\n(unclosed\n", "x.acl");
  ASSERT_FALSE(bad_regex.ok());
  EXPECT_TRUE(absl::StartsWith(bad_regex.status().message(), "x.acl:2: not a regular expression"))
      << bad_regex.status();
  auto backref = Acl::parse("(a)\\1\n", "x.acl");  // PCRE has it, RE2 does not
  ASSERT_FALSE(backref.ok());
  EXPECT_TRUE(absl::StartsWith(backref.status().message(), "x.acl:1:")) << backref.status();
  auto prefix = Acl::parse("\n\n10.0.0.0/33\n", "x.acl");
  ASSERT_FALSE(prefix.ok());
  EXPECT_TRUE(absl::StrContains(prefix.status().message(), "x.acl:3:")) << prefix.status();
  auto section = Acl::parse("[bypass]\n", "x.acl");
  ASSERT_FALSE(section.ok());
  EXPECT_EQ(section.status().message(), "x.acl:1: unknown section [bypass]");
  EXPECT_FALSE(Acl::load("/nonexistent/x.acl").ok());
}

TEST(AclTest, TheSlotHandsOutTheCurrentAcl) {
  AclSlot slot(parse("[bypass_all]\n"));
  const auto before = slot.get();
  slot.set(parse("[proxy_all]\n"));
  EXPECT_TRUE(before->bypassByDefault());  // a reader keeps the one it took
  EXPECT_FALSE(slot.get()->bypassByDefault());
}

}  // namespace
}  // namespace shadowrelay::relay
