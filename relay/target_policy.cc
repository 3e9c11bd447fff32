// SPDX-License-Identifier: Apache-2.0
#include "relay/target_policy.h"

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>

#include "relay/acl/acl.h"
#include "relay/host_addresses.h"
#include "relay/net/ip_networks.h"

namespace shadowrelay::relay {
namespace {

struct V4Range {
  uint32_t net;  // host byte order
  int prefix;
};

constexpr V4Range kRefusedV4[] = {
    {0x00000000, 8},   // 0.0.0.0/8 "this network"
    {0x0A000000, 8},   // 10/8
    {0x64400000, 10},  // 100.64/10 CGNAT
    {0x7F000000, 8},   // loopback
    {0xA9FE0000, 16},  // 169.254/16 link-local
    {0xAC100000, 12},  // 172.16/12
    {0xC0000000, 24},  // 192.0.0/24 IETF protocol assignments
    {0xC0000200, 24},  // 192.0.2/24 documentation (TEST-NET-1)
    {0xC0A80000, 16},  // 192.168/16
    {0xC6120000, 15},  // 198.18/15 benchmarking
    {0xC6336400, 24},  // 198.51.100/24 documentation (TEST-NET-2)
    {0xCB007100, 24},  // 203.0.113/24 documentation (TEST-NET-3)
    {0xE0000000, 4},   // multicast
    {0xF0000000, 4},   // reserved, and 255.255.255.255
};

bool publicV4(uint32_t ip) {  // host byte order
  for (const V4Range& r : kRefusedV4) {
    const uint32_t mask = ~uint32_t{0} << (32 - r.prefix);
    if ((ip & mask) == r.net) return false;
  }
  return true;
}

uint32_t v4At(const uint8_t* b) {
  return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
}

/// The IPv4 address that an RFC 6052 address with a `prefix_len`-bit prefix (48, 56, 64 or 96)
/// embeds: the 32 bits after the prefix, skipping bits 64..71 (the "u" octet).
uint32_t rfc6052V4(const uint8_t* b, int prefix_len) {
  uint8_t v4[4];
  for (int i = prefix_len / 8, n = 0; n < 4; ++i) {
    if (i != 8) v4[n++] = b[i];
  }
  return v4At(v4);
}

bool embeddedV4Public(const uint8_t* b, int prefix_len) {
  return publicV4(rfc6052V4(b, prefix_len));
}

// How an IPv6 prefix is judged: refused whole, or by the IPv4 address(es) it carries.
enum class Carries {
  Nothing,        // refused whole
  LastV4,         // the last 32 bits: IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96
  LocalUseNat64,  // 64:ff9b:1::/48: its translators' prefix length is a local choice
  SixToFour,      // 2002:V4::/48
  Teredo,         // 2001:0:SERVER:flags:port:~CLIENT
};

struct V6Rule {
  uint8_t net[16];
  int prefix;
  Carries carries;
};

// Checked in order; the first rule whose prefix matches decides.
constexpr V6Rule kV6Rules[] = {
    // ::ffff:0:0/96 IPv4-mapped.
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, Carries::LastV4},
    // ::/96 IPv4-compatible (deprecated); covers :: and ::1 (0.0.0.0/8).
    {{}, 96, Carries::LastV4},
    // ::ffff:0:0:0/96 SIIT IPv4-translated (RFC 2765): never a destination on the Internet.
    {{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, Carries::Nothing},
    // 64:ff9b::/96 NAT64 well-known prefix (RFC 6052).
    {{0, 0x64, 0xff, 0x9b}, 96, Carries::LastV4},
    // 64:ff9b:1::/48 NAT64 local-use prefix (RFC 8215).
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, Carries::LocalUseNat64},
    // 100::/64 discard-only (RFC 6666).
    {{0x01, 0}, 64, Carries::Nothing},
    // 2001:db8::/32 documentation.
    {{0x20, 0x01, 0x0d, 0xb8}, 32, Carries::Nothing},
    // 2001::/32 Teredo.
    {{0x20, 0x01, 0, 0}, 32, Carries::Teredo},
    // 2002::/16 6to4.
    {{0x20, 0x02}, 16, Carries::SixToFour},
    // fc00::/7 unique local.
    {{0xfc}, 7, Carries::Nothing},
    // fe80::/10 link-local.
    {{0xfe, 0x80}, 10, Carries::Nothing},
    // fec0::/10 site-local (deprecated).
    {{0xfe, 0xc0}, 10, Carries::Nothing},
    // ff00::/8 multicast.
    {{0xff}, 8, Carries::Nothing},
};

bool inV6(const uint8_t* b, const V6Rule& rule) {
  const int whole = rule.prefix / 8;
  if (std::memcmp(b, rule.net, static_cast<size_t>(whole)) != 0) return false;
  const int bits = rule.prefix % 8;
  if (bits == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (b[whole] & mask) == (rule.net[whole] & mask);
}

bool publicV6(const uint8_t* b) {
  for (const V6Rule& rule : kV6Rules) {
    if (!inV6(b, rule)) continue;
    switch (rule.carries) {
      case Carries::Nothing:
        return false;
      case Carries::LastV4:
        return publicV4(v4At(b + 12));
      case Carries::LocalUseNat64:
        // The prefix length of a translator inside the /48 cannot be seen from the address:
        // every RFC 6052 reading of it must be public.
        return embeddedV4Public(b, 48) && embeddedV4Public(b, 56) && embeddedV4Public(b, 64) &&
               embeddedV4Public(b, 96);
      case Carries::SixToFour:
        return publicV4(v4At(b + 2));
      case Carries::Teredo:
        // Bits 32..63: the Teredo server; the last 32 bits: the client, inverted (RFC 4380).
        return publicV4(v4At(b + 4)) && publicV4(~v4At(b + 12));
    }
  }
  return true;
}

}  // namespace

bool isPublicUnicast(const sockaddr* addr) {
  if (addr->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    return publicV4(ntohl(in->sin_addr.s_addr));
  }
  if (addr->sa_family != AF_INET6) {
    return false;
  }
  return publicV6(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr.s6_addr);
}

bool TargetPolicy::aclBlocks(const sockaddr* addr) const {
  return acl_ != nullptr && acl_->blocksAddress(addr);
}

bool TargetPolicy::allows(const sockaddr* addr) const {
  if (forbidden_ != nullptr && forbidden_->contains(addr)) return false;
  if (aclBlocks(addr)) return false;
  if (allow_private_) return true;
  if (!isPublicUnicast(addr)) return false;
  return host_ == nullptr || !host_->contains(addr);
}

}  // namespace shadowrelay::relay
