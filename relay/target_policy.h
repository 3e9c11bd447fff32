// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>

namespace shadowrelay::relay {

class Acl;
class HostAddresses;
class IpNetworks;

/// True when `addr` is a public unicast address a server may connect to by default. Refused:
/// - IPv4: unspecified and 0/8, loopback, RFC 1918, CGNAT 100.64/10, link-local, 192.0.0/24,
///   the documentation ranges 192.0.2/24, 198.51.100/24 and 203.0.113/24, benchmarking
///   198.18/15, multicast, reserved 240/4 and broadcast;
/// - IPv6: :: and ::1, ULA fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast,
///   documentation 2001:db8::/32, discard-only 100::/64, SIIT ::ffff:0:0:0/96;
/// - IPv6 that carries an IPv4 address which is refused: IPv4-mapped ::ffff:0:0/96 and
///   -compatible ::/96, NAT64 64:ff9b::/96 (the last 32 bits), NAT64 local-use 64:ff9b:1::/48
///   (each RFC 6052 reading: /48, /56, /64 and /96, since the translator's prefix length is a
///   local choice), 6to4 2002::/16 (bits 16..47) and Teredo 2001::/32 (the server, bits
///   32..63, and the client, the last 32 bits inverted: either refused refuses the address).
/// Pure: the host's own addresses are TargetPolicy's business.
bool isPublicUnicast(const sockaddr* addr);

/// Where a server may connect or send for a client: public unicast (isPublicUnicast) and not
/// an address of this host's own interfaces (HostAddresses, when given), unless
/// --allow-private lifts that default policy; and never in the operator's `forbidden`
/// networks (forbidden_ip), --allow-private or not. A small value; what it borrows must
/// outlive it. allows() is thread-safe and cheap (no lock, no allocation).
class TargetPolicy {
 public:
  /// Refuses what isPublicUnicast() refuses; knows no host address.
  TargetPolicy() = default;
  /// `host` and `forbidden` may be null (the ranges alone).
  /// `acl`: its [outbound_block_list] addresses are refused too, --allow-private or not.
  TargetPolicy(bool allow_private, const HostAddresses* host,
               const IpNetworks* forbidden = nullptr, std::shared_ptr<const Acl> acl = nullptr)
      : allow_private_(allow_private), host_(host), forbidden_(forbidden), acl_(std::move(acl)) {}

  bool allows(const sockaddr* addr) const;
  /// Whether the ACL's [outbound_block_list] is what refuses `addr` (for the counters).
  bool aclBlocks(const sockaddr* addr) const;

 private:
  bool allow_private_ = false;
  const HostAddresses* host_ = nullptr;
  const IpNetworks* forbidden_ = nullptr;
  std::shared_ptr<const Acl> acl_;
};

}  // namespace shadowrelay::relay
