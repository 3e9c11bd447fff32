// SPDX-License-Identifier: Apache-2.0
#pragma once
// The /metrics families the relay's stats feed, each declared once: name, type and help. Every
// stats field names the family it feeds (stats_macros.h); api/metrics emits the families in this
// order. The names, labels and helps are an interface: deploy/ dashboards and alert rules, the
// README and tests query them.

#include <cstdint>

#include "absl/strings/string_view.h"

namespace shadowrelay::relay {

enum class MetricType : uint8_t { Counter, Gauge, Histogram };

// FAMILY(id, name, type, help). `id` becomes a Metric enumerator.
#define SR_RELAY_METRIC_FAMILIES(FAMILY)                                                         \
  FAMILY(DataBytes, "shadowrelay_data_bytes_total", Counter,                                     \
         "Payload bytes relayed, by protocol (tcp, udp), direction (upload: client to target, "  \
         "download: target to client) and user.")                                                \
  FAMILY(TcpConnectionsOpened, "shadowrelay_tcp_connections_opened_total", Counter,              \
         "TCP connections accepted from clients.")                                               \
  FAMILY(TcpConnectionsClosed, "shadowrelay_tcp_connections_closed_total", Counter,              \
         "TCP sessions closed, by user (\"\": no user identified, e.g. probes) and status: ok, " \
         "auth_failed, replay, timeout_handshake, timeout_idle, timeout_connect, dns_failed, "   \
         "target_refused, target_private, error, stale_timestamp (Shadowsocks 2022).")          \
  FAMILY(TcpConnectionsActive, "shadowrelay_tcp_connections_active", Gauge,                      \
         "TCP sessions open now.")                                                               \
  FAMILY(TcpRefusedOverLimit, "shadowrelay_tcp_refused_over_limit_total", Counter,               \
         "TCP sessions refused because their user was over a limit "                             \
         "(max_connections or data quota), by user.")                                            \
  FAMILY(UserRefused, "shadowrelay_user_refused_total", Counter,                                 \
         "Sessions and UDP datagrams of an identified user refused for a per-user reason, by "   \
         "user and reason: expired (past the user's expire_time or expire_after_first_use), "    \
         "over_devices (a new device beyond max_devices; UDP: each datagram that would start "   \
         "an association).")                                                                     \
  FAMILY(UserRateLimited, "shadowrelay_user_rate_limited_seconds_total", Counter,              \
         "Time a user's TCP traffic waited for its bytes_per_second, by user and direction "     \
         "(up: client to target, down: target to client); counted once however many of the "    \
         "user's sessions waited at once.")                                                      \
  FAMILY(TcpAcceptErrors, "shadowrelay_tcp_accept_errors_total", Counter,                        \
         "Failed accept() calls (EMFILE, ENFILE, ENOBUFS, ...): the process "                    \
         "ran out of file descriptors or memory.")                                               \
  FAMILY(TcpAcceptRefused, "shadowrelay_tcp_accept_refused_total", Counter,                      \
         "Connections closed at accept without a byte, by reason: source (its IPv4 address or "  \
         "IPv6 /64 holds --max-preauth-per-source unauthenticated connections), worker (the "    \
         "worker holds --max-preauth-per-worker), no_fd (out of file descriptors: accepted on "  \
         "the reserve descriptor and closed).")                                                  \
  FAMILY(AclDecisions, "shadowrelay_acl_decisions_total", Counter,                              \
         "TCP connections decided by the --acl file, by decision: bypass (local/tunnel: "        \
         "connected directly), proxy (local/tunnel: through the server), block (server: a "      \
         "target of [outbound_block_list], refused).")                                           \
  FAMILY(TcpConnectionBytes, "shadowrelay_tcp_connection_bytes", Histogram,                      \
         "Payload bytes of one TCP session, both directions, at its close.")                     \
  FAMILY(TcpConnectionDuration, "shadowrelay_tcp_connection_duration_seconds", Histogram,        \
         "Lifetime of one TCP session, accept to close.")                                        \
  FAMILY(ProbeBytes, "shadowrelay_probe_bytes", Histogram,                                       \
         "Bytes a client sent before its handshake failed (no key opened "                       \
         "it, replayed salt or bad address): the size of probes.")                               \
  FAMILY(Timeouts, "shadowrelay_timeouts_total", Counter,                                        \
         "Timeouts by kind: handshake (client too slow to authenticate), idle (no byte moved "   \
         "for the timeout), connect (target did not answer), dns (no name server answered), "    \
         "udp (idle UDP association expired).")                                                  \
  FAMILY(UdpAssociationsActive, "shadowrelay_udp_associations_active", Gauge,                    \
         "UDP associations (client address to upstream socket) open now.")                       \
  FAMILY(UdpAssociationsCreated, "shadowrelay_udp_associations_created_total", Counter,          \
         "UDP associations created.")                                                            \
  FAMILY(UdpAssociationsEvicted, "shadowrelay_udp_associations_evicted_total", Counter,          \
         "UDP associations evicted because the association table was full.")                     \
  FAMILY(UdpPackets, "shadowrelay_udp_packets_total", Counter,                                   \
         "UDP datagrams relayed, by direction (upload: client to target, "                       \
         "download: target to client) and user.")                                                \
  FAMILY(UdpDropped, "shadowrelay_udp_dropped_total", Counter,                                   \
         "UDP datagrams dropped, by reason: open (too short or no key opened it), replay, "      \
         "address (bad target address), refused (private target), over_quota (the user is "      \
         "over its data quota), over_rate (over the user's bytes_per_second), resolve, send (a send failed), too_big, fragment (SOCKS5 "       \
         "FRAG), foreign (SOCKS5: not from the client's IP), stale_timestamp and "               \
         "replayed_packet_id (Shadowsocks 2022), session (a 2022 client: a reply to another "    \
         "session), trial_budget (a key-less flood: trial decryption budget spent), "            \
         "user_associations (the user's share of the table), memory (held datagrams over "       \
         "budget), revoked (the user changed meanwhile), gost_queue (gost UDP over TCP: the "       \
         "control connection's reply queue was full), gost_malformed (gost UDP over TCP: a "     \
         "malformed frame; the connection closes).")                                             \
  FAMILY(UdpGostFramed, "shadowrelay_udp_gost_framed_total", Counter,                            \
         "local: datagrams carried gost-style on a SOCKS5 control connection (UDP over TCP), "    \
         "by direction (upload: framed by the client, download: framed back to it).")            \
  FAMILY(DnsQueries, "shadowrelay_dns_queries_total", Counter,                                   \
         "Host name lookups by result (cache answers included): ok, nxdomain, nodata, "          \
         "timeout, server_failure, invalid_name, cancelled, internal.")                          \
  FAMILY(DnsCacheHits, "shadowrelay_dns_cache_hits_total", Counter,                              \
         "Lookups answered from the DNS cache (positive or negative entry).")                    \
  FAMILY(DnsCacheMisses, "shadowrelay_dns_cache_misses_total", Counter,                          \
         "Lookups the DNS cache could not answer (a query was sent).")                           \
  FAMILY(DnsLookupDuration, "shadowrelay_dns_lookup_duration_seconds", Histogram,                \
         "Duration of DNS lookups that went to a name server (cache answers excluded).")

/// A family of SR_RELAY_METRIC_FAMILIES, in its order after None (a field only the log shows).
enum class Metric : uint8_t {
  None,
#define SR_METRIC_ENUMERATOR(id, name, type, help) id,
  SR_RELAY_METRIC_FAMILIES(SR_METRIC_ENUMERATOR)
#undef SR_METRIC_ENUMERATOR
      kCount,
};

struct MetricFamilyInfo {
  absl::string_view name;
  MetricType type;
  absl::string_view help;
};

/// The declaration of `metric`, which must be neither None nor kCount.
const MetricFamilyInfo& metricFamily(Metric metric);

}  // namespace shadowrelay::relay
