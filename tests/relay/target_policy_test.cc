// SPDX-License-Identifier: Apache-2.0
#include "relay/target_policy.h"

#include <arpa/inet.h>

#include <string>

#include "dns/ip_address.h"
#include "gtest/gtest.h"
#include "relay/host_addresses.h"
#include "relay/net/ip_networks.h"

namespace shadowrelay::relay {
namespace {

sockaddr_storage parse(const std::string& ip) {
  sockaddr_storage ss{};
  if (inet_pton(AF_INET, ip.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    ss.ss_family = AF_INET;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr), 1)
        << ip;
    ss.ss_family = AF_INET6;
  }
  return ss;
}

bool allowed(const std::string& ip) {
  const sockaddr_storage ss = parse(ip);
  return isPublicUnicast(reinterpret_cast<const sockaddr*>(&ss));
}

struct Case {
  const char* ip;
  bool allowed;
  const char* why;
};

// One row per rule of isPublicUnicast, and its neighbours on both sides where they matter.
constexpr Case kCases[] = {
    // IPv4 special ranges.
    {"0.0.0.0", false, "unspecified"},
    {"0.1.2.3", false, "0/8"},
    {"10.1.2.3", false, "RFC 1918"},
    {"100.64.0.1", false, "CGNAT"},
    {"100.127.255.254", false, "CGNAT"},
    {"100.63.255.255", true, "below CGNAT"},
    {"100.128.0.1", true, "above CGNAT"},
    {"127.0.0.1", false, "loopback"},
    {"127.255.0.1", false, "loopback"},
    {"169.254.169.254", false, "link-local (cloud metadata)"},
    {"172.16.0.1", false, "RFC 1918"},
    {"172.31.255.255", false, "RFC 1918"},
    {"172.15.0.1", true, "below 172.16/12"},
    {"172.32.0.1", true, "above 172.16/12"},
    {"192.168.1.1", false, "RFC 1918"},
    {"192.169.0.1", true, "above 192.168/16"},
    {"192.0.0.8", false, "IETF protocol assignments"},
    {"198.18.0.1", false, "benchmarking"},
    {"224.0.0.1", false, "multicast"},
    {"239.255.255.250", false, "multicast"},
    {"240.0.0.1", false, "reserved"},
    {"255.255.255.255", false, "broadcast"},
    {"1.1.1.1", true, "public"},
    {"8.8.8.8", true, "public"},
    {"223.255.255.254", true, "public"},
    // IPv4 documentation ranges.
    {"192.0.2.1", false, "TEST-NET-1"},
    {"192.0.2.255", false, "TEST-NET-1"},
    {"192.0.3.1", true, "after TEST-NET-1"},
    {"198.51.100.7", false, "TEST-NET-2"},
    {"198.51.101.1", true, "after TEST-NET-2"},
    {"203.0.113.9", false, "TEST-NET-3"},
    {"203.0.112.255", true, "before TEST-NET-3"},
    {"203.0.114.1", true, "after TEST-NET-3"},
    // IPv6 special ranges.
    {"::", false, "unspecified"},
    {"::1", false, "loopback"},
    {"fc00::1", false, "ULA"},
    {"fd12:3456::1", false, "ULA"},
    {"fe80::1", false, "link-local"},
    {"fec0::1", false, "site-local"},
    {"ff02::1", false, "multicast"},
    {"2001:4860:4860::8888", true, "public"},
    {"2606:4700::1111", true, "public"},
    {"2001:db8::1", false, "documentation"},
    {"2001:db8:ffff::1", false, "documentation"},
    {"2001:db9::1", true, "after documentation"},
    {"100::1", false, "discard-only 100::/64"},
    {"100::ffff:ffff:ffff:ffff", false, "discard-only 100::/64"},
    // IPv4-mapped and -compatible.
    {"::ffff:127.0.0.1", false, "mapped loopback"},
    {"::ffff:10.0.0.1", false, "mapped RFC 1918"},
    {"::ffff:192.0.2.1", false, "mapped documentation"},
    {"::ffff:8.8.8.8", true, "mapped public"},
    {"::127.0.0.1", false, "compatible loopback"},
    // SIIT ::ffff:0:0:0/96: refused whatever it carries.
    {"::ffff:0:a00:1", false, "SIIT"},
    {"::ffff:0:808:808", false, "SIIT, even with a public IPv4"},
    // NAT64 well-known prefix: the last 32 bits.
    {"64:ff9b::808:808", true, "NAT64 of 8.8.8.8"},
    {"64:ff9b::a00:1", false, "NAT64 of 10.0.0.1"},
    {"64:ff9b::7f00:1", false, "NAT64 of 127.0.0.1"},
    {"64:ff9b::a9fe:a9fe", false, "NAT64 of 169.254.169.254"},
    {"64:ff9b::c0a8:101", false, "NAT64 of 192.168.1.1"},
    {"64:ff9b::c000:201", false, "NAT64 of 192.0.2.1"},
    // NAT64 local-use prefix: every RFC 6052 reading (/48, /56, /64, /96) must be public.
    {"64:ff9b:1::a00:1", false, "local-use NAT64 of 10.0.0.1 (/96)"},
    {"64:ff9b:1::808:808", false, "local-use NAT64: its /48 reading is 0.0.0.0"},
    {"64:ff9b:1:808:8:808:808:808", true, "local-use NAT64 of 8.8.8.8 in every reading"},
    {"64:ff9b:1:a00:1:808:808:808", false, "local-use NAT64: the /48 reading is 10.0.0.1"},
    {"64:ff9b:2::a00:1", true, "outside both NAT64 prefixes"},
    // 6to4: bits 16..47.
    {"2002:808:808::1", true, "6to4 of 8.8.8.8"},
    {"2002:a00:1::1", false, "6to4 of 10.0.0.1"},
    {"2002:7f00:1::1", false, "6to4 of 127.0.0.1"},
    {"2002:c000:201::1", false, "6to4 of 192.0.2.1"},
    // Teredo: server = bits 32..63, client = the last 32 bits inverted.
    {"2001:0:4136:e378:8000:63bf:f7f7:f7f7", true, "Teredo, server 65.54.227.120, client 8.8.8.8"},
    {"2001:0:4136:e378:8000:63bf:f5ff:fffe", false, "Teredo, client 10.0.0.1"},
    {"2001:0:4136:e378:8000:63bf:80ff:fffe", false, "Teredo, client 127.0.0.1"},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", false, "Teredo, client 192.0.2.45 (RFC 4380)"},
    {"2001:0:a00:1:8000:63bf:f7f7:f7f7", false, "Teredo, server 10.0.0.1"},
    {"2001::1", false, "Teredo, server 0.0.0.0"},
};

TEST(TargetPolicyTest, RangesTable) {
  for (const Case& c : kCases) {
    EXPECT_EQ(allowed(c.ip), c.allowed) << c.ip << " (" << c.why << ")";
  }
}

TEST(TargetPolicyTest, RefusesOtherFamilies) {
  sockaddr_storage ss{};
  ss.ss_family = AF_UNIX;
  EXPECT_FALSE(isPublicUnicast(reinterpret_cast<const sockaddr*>(&ss)));
}

bool policyAllows(const TargetPolicy& policy, const std::string& ip) {
  const sockaddr_storage ss = parse(ip);
  return policy.allows(reinterpret_cast<const sockaddr*>(&ss));
}

TEST(TargetPolicyTest, DefaultPolicyIsTheRanges) {
  const TargetPolicy policy;
  EXPECT_FALSE(policyAllows(policy, "10.0.0.1"));
  EXPECT_FALSE(policyAllows(policy, "64:ff9b::a00:1"));
  EXPECT_TRUE(policyAllows(policy, "1.1.1.1"));
}

TEST(TargetPolicyTest, RefusesTheHostsOwnAddressesInEveryForm) {
  // Public addresses standing in for this host's own (a VPS's public IPv4 and IPv6).
  const HostAddresses host(
      {*dns::IpAddress::parse("1.1.1.1"), *dns::IpAddress::parse("2606:4700::1111")});
  const TargetPolicy policy(/*allow_private=*/false, &host);
  EXPECT_FALSE(policyAllows(policy, "1.1.1.1"));
  EXPECT_FALSE(policyAllows(policy, "::ffff:1.1.1.1"));
  EXPECT_FALSE(policyAllows(policy, "2606:4700::1111"));
  EXPECT_TRUE(policyAllows(policy, "1.1.1.2"));
  EXPECT_TRUE(policyAllows(policy, "2606:4700::1112"));
  EXPECT_FALSE(policyAllows(policy, "10.0.0.1"));  // the ranges still apply
}

TEST(TargetPolicyTest, AllowPrivateLiftsEverything) {
  const HostAddresses host({*dns::IpAddress::parse("1.1.1.1")});
  const TargetPolicy policy(/*allow_private=*/true, &host);
  for (const char* ip : {"1.1.1.1", "127.0.0.1", "10.0.0.1", "64:ff9b::a00:1", "::1"}) {
    EXPECT_TRUE(policyAllows(policy, ip)) << ip;
  }
}

TEST(IpNetworksTest, ParsesPythonsListAndMatchesPrefixes) {
  auto nets = IpNetworks::parse({"127.0.0.0/8, ::1/128", "8.8.4.0/23", "2001:4860::/33"});
  ASSERT_TRUE(nets.ok()) << nets.status();
  EXPECT_EQ(nets->size(), 4u);
  const auto in = [&](const std::string& ip) {
    const sockaddr_storage ss = parse(ip);
    return nets->contains(reinterpret_cast<const sockaddr*>(&ss));
  };
  EXPECT_TRUE(in("127.9.9.9"));
  EXPECT_TRUE(in("::1"));
  EXPECT_FALSE(in("::2"));
  EXPECT_TRUE(in("8.8.4.4"));
  EXPECT_TRUE(in("8.8.5.255"));  // /23: the low bit of the third byte is host
  EXPECT_FALSE(in("8.8.6.0"));
  EXPECT_FALSE(in("8.8.3.255"));
  EXPECT_TRUE(in("::ffff:8.8.4.4"));  // IPv4-mapped: tested as IPv4
  EXPECT_TRUE(in("2001:4860:7fff::1"));
  EXPECT_FALSE(in("2001:4860:8000::1"));  // bit 33 set
  EXPECT_FALSE(in("1.1.1.1"));
}

TEST(IpNetworksTest, ErrorsNameTheSpec) {
  EXPECT_EQ(IpNetworks::parse({"10.0.0.0/8,10.0.0.0/33"}).status().message(),
            "\"10.0.0.0/33\": the prefix length must be 0..32");
  EXPECT_EQ(IpNetworks::parse({"example.com"}).status().message(),
            "\"example.com\": not an IPv4 or IPv6 address");
  EXPECT_EQ(IpNetworks::parse({"::/x"}).status().message(),
            "\"::/x\": the prefix length must be 0..128");
  EXPECT_TRUE(IpNetworks::parse({}).ok());
}

TEST(TargetPolicyTest, ForbiddenNetworksApplyEvenWithAllowPrivate) {
  auto forbidden = IpNetworks::parse({"1.1.1.0/24,10.1.0.0/16"});
  ASSERT_TRUE(forbidden.ok());
  const TargetPolicy open(/*allow_private=*/true, nullptr, &*forbidden);
  EXPECT_FALSE(policyAllows(open, "1.1.1.1"));
  EXPECT_FALSE(policyAllows(open, "10.1.2.3"));
  EXPECT_TRUE(policyAllows(open, "10.2.0.1"));
  EXPECT_TRUE(policyAllows(open, "8.8.8.8"));
  const TargetPolicy strict(/*allow_private=*/false, nullptr, &*forbidden);
  EXPECT_FALSE(policyAllows(strict, "1.1.1.1"));
  EXPECT_FALSE(policyAllows(strict, "10.2.0.1"));  // the default policy still applies
  EXPECT_TRUE(policyAllows(strict, "8.8.8.8"));
}

}  // namespace
}  // namespace shadowrelay::relay
