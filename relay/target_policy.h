// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

namespace shadowrelay::relay {

/// True when `addr` is a public unicast address a server may connect to by default. Refused:
/// unspecified, loopback, RFC 1918, CGNAT 100.64/10, link-local, 0/8, 192.0.0/24, benchmarking
/// 198.18/15, multicast, reserved 240/4 and broadcast; IPv6 ::, ::1, ULA fc00::/7, link-local
/// fe80::/10, site-local fec0::/10, multicast ff00::/8, and IPv4-mapped/compatible addresses whose
/// IPv4 part is refused.
bool isPublicUnicast(const sockaddr* addr);

}  // namespace shadowrelay::relay
