// SPDX-License-Identifier: Apache-2.0
#pragma once
// Host and port as users write them ("host:port", "[v6]:port") and the conversions between the
// project's address types: SocketAddress (sockets), dns::IpAddress (resolver answers) and
// crypto::SocksAddress (the Shadowsocks/SOCKS5 address header). The one place that parses
// host:port and copies address bytes between these types.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/address.h"
#include "dns/ip_address.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay {

struct Endpoint {
  /// Whether port 0 ("any free port", for listeners) is accepted.
  enum class Port { NonZero, AnyOrZero };

  std::string host;  // a name or an IP literal, without brackets
  uint16_t port = 0;

  /// "host:port" or "[IPv6]:port". A bare IPv6 literal ("::1:80") is refused: it is ambiguous.
  /// The error quotes `text`.
  static absl::StatusOr<Endpoint> parse(absl::string_view text, Port rule = Port::NonZero);
  /// The numeric host of `address` (IPv4-mapped IPv6 shown as IPv6) and its port.
  static Endpoint fromSocketAddress(const SocketAddress& address);

  /// "host:port", or "[v6]:port" for an IPv6 literal.
  std::string toString() const;
  /// The host as an IP literal; nullopt for a name.
  std::optional<dns::IpAddress> ip() const;
  /// The address header naming this endpoint: IPv4/IPv6 for literals, else the domain.
  crypto::SocksAddress socksAddress() const;

  bool operator==(const Endpoint&) const = default;
};

/// The IP of an IPv4 or IPv6 address header (`address.type` must not be Domain).
dns::IpAddress ipOf(const crypto::SocksAddress& address);
/// `ip` and `port` as a socket address.
SocketAddress socketAddressOf(const dns::IpAddress& ip, uint16_t port);
/// An IPv4 or IPv6 address header as a socket address (`target.type` must not be Domain).
SocketAddress socketAddressOf(const crypto::SocksAddress& target);
/// The address header of a socket address; an IPv4-mapped IPv6 address becomes IPv4.
crypto::SocksAddress socksAddressOf(const SocketAddress& address);
/// `address` as a destination for an AF_INET6 dual-stack socket (IPv4 becomes ::ffff:a.b.c.d).
SocketAddress asV6(const SocketAddress& address);
/// An IPv4-mapped IPv6 address as plain IPv4; anything else unchanged.
SocketAddress unmapped(const SocketAddress& address);
/// Whether two addresses have the same IP (ports ignored; IPv4-mapped equals IPv4).
bool sameIp(const SocketAddress& a, const SocketAddress& b);

/// The socket addresses of `hosts` with `port`: IP literals as given, names through getaddrinfo.
/// Blocks: for start-up only. The error names the host.
absl::StatusOr<std::vector<SocketAddress>> resolveAtStartup(const std::vector<std::string>& hosts,
                                                           uint16_t port);

/// The first non-loopback IPv4 address of this machine (getifaddrs), e.g. the host of a
/// server's access URLs when it listens on a wildcard; nullopt when there is none.
std::optional<std::string> firstNonLoopbackIpv4();

}  // namespace shadowrelay::relay
