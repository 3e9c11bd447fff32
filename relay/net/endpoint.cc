// SPDX-License-Identifier: Apache-2.0
#include "relay/net/endpoint.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>

#include <array>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace shadowrelay::relay {
namespace {

std::optional<dns::IpAddress> ipOfSocket(const SocketAddress& address) {
  return dns::IpAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&address.storage),
                                      address.len);
}

}  // namespace

absl::StatusOr<Endpoint> Endpoint::parse(absl::string_view text, Port rule) {
  Endpoint out;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not [ipv6]:port"));
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos || colon == 0 ||
        text.substr(0, colon).find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\" is not host:port (write IPv6 as [addr]:port)"));
    }
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  int port = -1;
  const int min_port = rule == Port::AnyOrZero ? 0 : 1;
  if (!absl::SimpleAtoi(port_text, &port) || port < min_port || port > 65535 ||
      out.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not host:port"));
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

Endpoint Endpoint::fromSocketAddress(const SocketAddress& address) {
  Endpoint out;
  out.port = address.port();
  if (auto ip = ipOfSocket(address)) {
    out.host = ip->toString();
  }
  return out;
}

std::string Endpoint::toString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

std::optional<dns::IpAddress> Endpoint::ip() const { return dns::IpAddress::parse(host); }

crypto::SocksAddress Endpoint::socksAddress() const {
  const std::optional<dns::IpAddress> literal = ip();
  if (!literal) return crypto::SocksAddress::domain(host, port);
  return socksAddressOf(socketAddressOf(*literal, port));
}

dns::IpAddress ipOf(const crypto::SocksAddress& address) {
  if (address.type == crypto::SocksAddress::Type::IPv4) {
    return dns::IpAddress::v4({address.ip[0], address.ip[1], address.ip[2], address.ip[3]});
  }
  return dns::IpAddress::v6(address.ip);
}

SocketAddress socketAddressOf(const dns::IpAddress& ip, uint16_t port) {
  SocketAddress out;
  out.len = ip.toSockaddr(port, &out.storage);
  return out;
}

SocketAddress socketAddressOf(const crypto::SocksAddress& target) {
  return socketAddressOf(ipOf(target), target.port);
}

crypto::SocksAddress socksAddressOf(const SocketAddress& address) {
  const SocketAddress plain = unmapped(address);
  const auto ip = ipOfSocket(plain);
  if (!ip) return crypto::SocksAddress{};
  if (ip->isV4()) {
    return crypto::SocksAddress::ipv4({ip->data()[0], ip->data()[1], ip->data()[2], ip->data()[3]},
                                      plain.port());
  }
  std::array<uint8_t, 16> bytes{};
  std::memcpy(bytes.data(), ip->data(), 16);
  return crypto::SocksAddress::ipv6(bytes, plain.port());
}

SocketAddress asV6(const SocketAddress& address) {
  if (address.family() != AF_INET) return address;
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.storage);
  SocketAddress out;
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  v6->sin6_family = AF_INET6;
  v6->sin6_port = v4->sin_port;
  v6->sin6_addr.s6_addr[10] = 0xff;
  v6->sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&v6->sin6_addr.s6_addr[12], &v4->sin_addr, 4);
  out.len = sizeof(sockaddr_in6);
  return out;
}

SocketAddress unmapped(const SocketAddress& address) {
  if (address.family() != AF_INET6) return address;
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
  if (!IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return address;
  SocketAddress out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  v4->sin_family = AF_INET;
  v4->sin_port = v6->sin6_port;
  std::memcpy(&v4->sin_addr, &v6->sin6_addr.s6_addr[12], 4);
  out.len = sizeof(sockaddr_in);
  return out;
}

bool sameIp(const SocketAddress& a, const SocketAddress& b) {
  const SocketAddress x = unmapped(a);
  const SocketAddress y = unmapped(b);
  const auto ip_x = ipOfSocket(x);
  const auto ip_y = ipOfSocket(y);
  return ip_x && ip_y && *ip_x == *ip_y;
}

absl::StatusOr<std::vector<SocketAddress>> resolveAtStartup(const std::vector<std::string>& hosts,
                                                           uint16_t port) {
  std::vector<SocketAddress> out;
  for (const std::string& host : hosts) {
    if (auto literal = dns::IpAddress::parse(host)) {
      out.push_back(socketAddressOf(*literal, port));
      continue;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    addrinfo* result = nullptr;
    const std::string service = absl::StrCat(port);
    const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
    if (rc != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot resolve \"", host, "\": ", gai_strerror(rc)));
    }
    for (addrinfo* it = result; it != nullptr; it = it->ai_next) {
      SocketAddress address;
      std::memcpy(&address.storage, it->ai_addr, it->ai_addrlen);
      address.len = it->ai_addrlen;
      out.push_back(address);
    }
    ::freeaddrinfo(result);
  }
  return out;
}

std::optional<std::string> firstNonLoopbackIpv4() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return std::nullopt;
  std::optional<std::string> found;
  for (ifaddrs* it = list; it != nullptr && !found; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    auto ip = dns::IpAddress::fromSockaddr(it->ifa_addr, sizeof(sockaddr_in));
    if (ip && ip->data()[0] != 127) found = ip->toString();
  }
  ::freeifaddrs(list);
  return found;
}

}  // namespace shadowrelay::relay
