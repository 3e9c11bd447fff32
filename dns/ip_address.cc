// SPDX-License-Identifier: Apache-2.0
#include "dns/ip_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace shadowrelay::dns {

std::optional<IpAddress> IpAddress::parse(absl::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
    if (text.find(':') == absl::string_view::npos) {
      return std::nullopt;  // "[1.2.3.4]" is not an address literal.
    }
  }
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) {
    return std::nullopt;
  }
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip;
  if (inet_pton(AF_INET, buf, ip.bytes_.data()) == 1) {
    ip.family_ = Family::V4;
    return ip;
  }
  if (inet_pton(AF_INET6, buf, ip.bytes_.data()) == 1) {
    ip.family_ = Family::V6;
    return ip;
  }
  return std::nullopt;
}

IpAddress IpAddress::v4(const std::array<uint8_t, 4>& bytes) {
  IpAddress ip;
  std::memcpy(ip.bytes_.data(), bytes.data(), bytes.size());
  ip.family_ = Family::V4;
  return ip;
}

IpAddress IpAddress::v6(const std::array<uint8_t, 16>& bytes) {
  IpAddress ip;
  ip.bytes_ = bytes;
  ip.family_ = Family::V6;
  return ip;
}

std::optional<IpAddress> IpAddress::fromSockaddr(const sockaddr* addr, socklen_t len) {
  if (addr == nullptr) {
    return std::nullopt;
  }
  IpAddress ip;
  if (addr->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in sin;
    std::memcpy(&sin, addr, sizeof(sin));
    std::memcpy(ip.bytes_.data(), &sin.sin_addr, 4);
    ip.family_ = Family::V4;
    return ip;
  }
  if (addr->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    sockaddr_in6 sin6;
    std::memcpy(&sin6, addr, sizeof(sin6));
    std::memcpy(ip.bytes_.data(), &sin6.sin6_addr, 16);
    ip.family_ = Family::V6;
    return ip;
  }
  return std::nullopt;
}

socklen_t IpAddress::toSockaddr(uint16_t port, sockaddr_storage* out) const {
  std::memset(out, 0, sizeof(*out));
  if (isV4()) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    std::memcpy(&sin.sin_addr, bytes_.data(), 4);
    std::memcpy(out, &sin, sizeof(sin));
    return sizeof(sin);
  }
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  std::memcpy(&sin6.sin6_addr, bytes_.data(), 16);
  std::memcpy(out, &sin6, sizeof(sin6));
  return sizeof(sin6);
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN];
  const char* s = inet_ntop(isV4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
  return s != nullptr ? std::string(s) : std::string();
}

}  // namespace shadowrelay::dns
