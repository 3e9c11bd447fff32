// SPDX-License-Identifier: Apache-2.0
#pragma once
// A list of IP networks given by an operator ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"), as
// Python shadowsocks' forbidden_ip takes them, and the membership test TargetPolicy asks.

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shadowrelay::relay {

class IpNetworks {
 public:
  /// Each spec is an address, an address/prefix-length, or several of them separated by
  /// commas (Python's "127.0.0.0/8,::1/128"); blanks around them are ignored. Errors name the
  /// spec that is wrong (INVALID_ARGUMENT).
  static absl::StatusOr<IpNetworks> parse(const std::vector<std::string>& specs);

  /// Whether `addr` (AF_INET or AF_INET6) is in one of the networks. An IPv4-mapped IPv6
  /// address (::ffff:a.b.c.d) is tested as the IPv4 address it carries. Cheap, no allocation.
  bool contains(const sockaddr* addr) const;
  bool empty() const { return networks_.empty(); }
  size_t size() const { return networks_.size(); }

 private:
  struct Network {
    bool v4 = true;
    std::array<uint8_t, 16> prefix{};  // the address with the host bits cleared
    int length = 0;                    // prefix length in bits
  };
  static bool matches(const Network& network, bool v4, const uint8_t* bytes);

  std::vector<Network> networks_;
};

}  // namespace shadowrelay::relay
