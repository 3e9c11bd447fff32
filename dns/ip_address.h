// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace shadowrelay::dns {

/// An IPv4 or IPv6 address (no port, no IPv6 zone). A small value type: 17 bytes.
class IpAddress {
 public:
  enum class Family : uint8_t { V4, V6 };

  /// 0.0.0.0.
  IpAddress() = default;

  /// Parses a dotted-quad IPv4 or an IPv6 literal; IPv6 may be wrapped in brackets ("[::1]").
  /// Anything else (host names, "127.1", zones such as "fe80::1%eth0") gives nullopt.
  static std::optional<IpAddress> parse(absl::string_view text);

  /// `bytes` is 4 (IPv4) or 16 (IPv6) bytes in network order.
  static IpAddress v4(const std::array<uint8_t, 4>& bytes);
  static IpAddress v6(const std::array<uint8_t, 16>& bytes);

  /// From an AF_INET or AF_INET6 socket address; nullopt for other families or short lengths.
  static std::optional<IpAddress> fromSockaddr(const sockaddr* addr, socklen_t len);

  Family family() const { return family_; }
  bool isV4() const { return family_ == Family::V4; }
  bool isV6() const { return family_ == Family::V6; }

  /// Network-order bytes: the first 4 for IPv4, all 16 for IPv6.
  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return isV4() ? 4 : 16; }

  /// A socket address for connect()/sendto(); `port` in host order. Returns the length used.
  socklen_t toSockaddr(uint16_t port, sockaddr_storage* out) const;

  /// "192.0.2.1" or "2001:db8::1" (RFC 5952, no brackets).
  std::string toString() const;

  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return a.family_ == b.family_ && a.bytes_ == b.bytes_;
  }

 private:
  std::array<uint8_t, 16> bytes_{};
  Family family_ = Family::V4;
};

}  // namespace shadowrelay::dns
