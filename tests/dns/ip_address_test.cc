// SPDX-License-Identifier: Apache-2.0
#include "dns/ip_address.h"

#include <netinet/in.h>

#include "gtest/gtest.h"

namespace shadowrelay::dns {
namespace {

TEST(IpAddressTest, ParsesIpv4) {
  std::optional<IpAddress> ip = IpAddress::parse("192.0.2.1");
  ASSERT_TRUE(ip.has_value());
  EXPECT_TRUE(ip->isV4());
  EXPECT_EQ(ip->size(), 4u);
  EXPECT_EQ(ip->toString(), "192.0.2.1");
  EXPECT_EQ(*ip, IpAddress::v4({192, 0, 2, 1}));
}

TEST(IpAddressTest, ParsesIpv6PlainAndBracketed) {
  std::optional<IpAddress> a = IpAddress::parse("2001:DB8::1");
  std::optional<IpAddress> b = IpAddress::parse("[2001:db8::1]");
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(a->isV6());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(a->toString(), "2001:db8::1");
  EXPECT_EQ(IpAddress::parse("::ffff:1.2.3.4")->family(), IpAddress::Family::V6);
}

TEST(IpAddressTest, RejectsNonLiterals) {
  for (const char* text : {"", "example.com", "127.1", "1.2.3.4.5", "256.1.1.1", "[1.2.3.4]",
                           "fe80::1%eth0", "[::1", "::1]", "1.2.3.4 ", ":::"}) {
    EXPECT_FALSE(IpAddress::parse(text).has_value()) << text;
  }
}

TEST(IpAddressTest, SockaddrRoundTrip) {
  for (const char* text : {"10.1.2.3", "fd00::2"}) {
    const IpAddress ip = *IpAddress::parse(text);
    sockaddr_storage ss;
    const socklen_t len = ip.toSockaddr(8388, &ss);
    EXPECT_EQ(len, ip.isV4() ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    const uint16_t port = ip.isV4() ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                                    : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    EXPECT_EQ(port, 8388);
    std::optional<IpAddress> back = IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, ip);
  }
  sockaddr_storage ss{};
  ss.ss_family = AF_UNIX;
  EXPECT_FALSE(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(ss)));
  EXPECT_FALSE(IpAddress::fromSockaddr(nullptr, 0));
}

}  // namespace
}  // namespace shadowrelay::dns
