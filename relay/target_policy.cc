// SPDX-License-Identifier: Apache-2.0
#include "relay/target_policy.h"

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>

namespace shadowrelay::relay {
namespace {

bool inV4(uint32_t ip, uint32_t net, int prefix) {
  const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
  return (ip & mask) == (net & mask);
}

bool publicV4(uint32_t ip) {  // host byte order
  struct Range {
    uint32_t net;
    int prefix;
  };
  static constexpr Range kRefused[] = {
      {0x00000000, 8},   // 0.0.0.0/8 "this network"
      {0x0A000000, 8},   // 10/8
      {0x64400000, 10},  // 100.64/10 CGNAT
      {0x7F000000, 8},   // loopback
      {0xA9FE0000, 16},  // 169.254/16 link-local
      {0xAC100000, 12},  // 172.16/12
      {0xC0000000, 24},  // 192.0.0/24 IETF protocol assignments
      {0xC0A80000, 16},  // 192.168/16
      {0xC6120000, 15},  // 198.18/15 benchmarking
      {0xE0000000, 4},   // multicast
      {0xF0000000, 4},   // reserved, and 255.255.255.255
  };
  for (const Range& r : kRefused) {
    if (inV4(ip, r.net, r.prefix)) {
      return false;
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
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
  const uint8_t* b = in6->sin6_addr.s6_addr;
  static constexpr uint8_t kZero[16] = {};
  // :: and ::1
  if (std::memcmp(b, kZero, 15) == 0 && (b[15] == 0 || b[15] == 1)) {
    return false;
  }
  // IPv4-mapped ::ffff:a.b.c.d and the deprecated IPv4-compatible ::a.b.c.d
  const bool mapped = std::memcmp(b, kZero, 10) == 0 && b[10] == 0xff && b[11] == 0xff;
  const bool compatible = std::memcmp(b, kZero, 12) == 0;
  if (mapped || compatible) {
    uint32_t v4;
    std::memcpy(&v4, b + 12, 4);
    return publicV4(ntohl(v4));
  }
  if ((b[0] & 0xfe) == 0xfc) return false;                  // fc00::/7 ULA
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false;  // fe80::/10 link-local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return false;  // fec0::/10 site-local
  if (b[0] == 0xff) return false;                           // multicast
  return true;
}

}  // namespace shadowrelay::relay
