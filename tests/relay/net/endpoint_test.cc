// SPDX-License-Identifier: Apache-2.0
#include "relay/net/endpoint.h"

#include <array>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

SocketAddress address(const char* ip, uint16_t port) {
  return socketAddressOf(*dns::IpAddress::parse(ip), port);
}

TEST(EndpointTest, ParsesHostPortForms) {
  EXPECT_EQ(*Endpoint::parse("example.com:80"), (Endpoint{"example.com", 80}));
  EXPECT_EQ(*Endpoint::parse("192.0.2.1:443"), (Endpoint{"192.0.2.1", 443}));
  EXPECT_EQ(*Endpoint::parse("[2001:db8::1]:53"), (Endpoint{"2001:db8::1", 53}));
  EXPECT_EQ(Endpoint::parse("[::1]:0", Endpoint::Port::AnyOrZero)->port, 0);
  for (const char* bad : {"::1:53", "[::1]53", "[::1", "host:", ":80", "host", "host:65536",
                          "host:0", "host:-1", "host:8x"}) {
    EXPECT_FALSE(Endpoint::parse(bad).ok()) << bad;
  }
  EXPECT_EQ(Endpoint::parse("nocolon").status().message(),
            "\"nocolon\" is not host:port (write IPv6 as [addr]:port)");
}

TEST(EndpointTest, PrintsIpv6InBrackets) {
  EXPECT_EQ((Endpoint{"::1", 8388}).toString(), "[::1]:8388");
  EXPECT_EQ((Endpoint{"example.com", 1}).toString(), "example.com:1");
  EXPECT_EQ(Endpoint::fromSocketAddress(address("2001:db8::2", 9)).toString(), "[2001:db8::2]:9");
  EXPECT_EQ(Endpoint::fromSocketAddress(address("192.0.2.7", 80)), (Endpoint{"192.0.2.7", 80}));
}

TEST(EndpointTest, SocksAddressOfLiteralsAndNames) {
  EXPECT_EQ((Endpoint{"192.0.2.7", 80}).socksAddress(),
            crypto::SocksAddress::ipv4({192, 0, 2, 7}, 80));
  EXPECT_EQ((Endpoint{"example.com", 443}).socksAddress(),
            crypto::SocksAddress::domain("example.com", 443));
  const auto v6 = (Endpoint{"2001:db8::1", 53}).socksAddress();
  EXPECT_EQ(v6.type, crypto::SocksAddress::Type::IPv6);
  EXPECT_EQ(v6.toString(), "[2001:db8::1]:53");
}

TEST(EndpointTest, ConversionsRoundTrip) {
  const crypto::SocksAddress socks = crypto::SocksAddress::ipv4({10, 0, 0, 1}, 7);
  EXPECT_EQ(socketAddressOf(socks).toString(), "10.0.0.1:7");
  EXPECT_EQ(socksAddressOf(socketAddressOf(socks)), socks);
  EXPECT_EQ(ipOf(socks), *dns::IpAddress::parse("10.0.0.1"));
  // IPv4-mapped IPv6 is written as IPv4 in an address header.
  EXPECT_EQ(socksAddressOf(asV6(address("192.0.2.7", 53))),
            crypto::SocksAddress::ipv4({192, 0, 2, 7}, 53));
}

TEST(EndpointTest, MappedAddressesRoundTripAndCompareByIp) {
  const SocketAddress v4 = address("192.0.2.7", 5300);
  const SocketAddress mapped = asV6(v4);
  EXPECT_EQ(mapped.family(), AF_INET6);
  EXPECT_EQ(mapped.toString(), "[::ffff:192.0.2.7]:5300");
  EXPECT_EQ(unmapped(mapped).toString(), "192.0.2.7:5300");
  EXPECT_EQ(unmapped(v4).toString(), v4.toString());
  const SocketAddress v6 = address("2001:db8::1", 53);
  EXPECT_EQ(asV6(v6).toString(), v6.toString());
  EXPECT_EQ(unmapped(v6).toString(), v6.toString());

  EXPECT_TRUE(sameIp(v4, mapped));
  EXPECT_TRUE(sameIp(v4, address("192.0.2.7", 1)));  // ports do not matter
  EXPECT_FALSE(sameIp(v4, address("192.0.2.8", 5300)));
  EXPECT_FALSE(sameIp(v4, v6));
}

TEST(EndpointTest, SocksAddressOfWritesMappedAsIpv4) {
  EXPECT_EQ(socksAddressOf(asV6(address("192.0.2.7", 53))),
            crypto::SocksAddress::ipv4({192, 0, 2, 7}, 53));
  EXPECT_EQ(socksAddressOf(address("192.0.2.7", 80)),
            crypto::SocksAddress::ipv4({192, 0, 2, 7}, 80));
  std::array<uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 1;
  EXPECT_EQ(socksAddressOf(address("2001:db8::1", 443)),
            crypto::SocksAddress::ipv6(v6, 443));
}

TEST(EndpointTest, ResolvesLiteralsWithoutLookup) {
  auto addresses = resolveAtStartup({"127.0.0.1", "::1"}, 8388);
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  ASSERT_EQ(addresses->size(), 2u);
  EXPECT_EQ((*addresses)[0].toString(), "127.0.0.1:8388");
  EXPECT_EQ((*addresses)[1].toString(), "[::1]:8388");
  EXPECT_FALSE(resolveAtStartup({"no-such-host.invalid"}, 1).ok());
}

}  // namespace
}  // namespace shadowrelay::relay
