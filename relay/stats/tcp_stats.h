// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "relay/stats/stats_macros.h"

namespace shadowrelay::relay {

/// Why a TCP session ended. Stable names (closeReasonName) double as metric labels.
enum class CloseReason : uint8_t {
  Done,              // both directions finished (EOF forwarded both ways)
  IdleTimeout,       // no byte moved for -t seconds
  HandshakeTimeout,  // the client did not complete its handshake before the deadline
  ClientClosed,      // the client went away before the relay started
  AuthFailed,        // the first chunk opened with no key of the port; drained, then FIN
  ReplayedSalt,      // the client's salt was seen before; drained, then FIN
  BadAddress,        // the target address did not parse; drained, then FIN
  TargetRefused,     // private/loopback target without --allow-private
  ResolveFailed,
  ConnectFailed,
  ConnectTimeout,
  BadStream,         // an authenticated stream later failed to open (corruption, attack)
  SocksError,        // malformed SOCKS5 greeting or request, or an unsupported command
  IoError,           // read/write error (reset by peer, ...)
  Shutdown,          // closed by a graceful stop's deadline
  OverLimit,         // the user is at max_connections, over its data quota or expired
  Revoked,           // the user was deleted, disabled or given a new key
  StaleTimestamp,    // 2022: the header's timestamp is more than 30 s off; drained, then FIN
  kCount,
};

const char* closeReasonName(CloseReason reason);

/// The `status` label of shadowrelay_tcp_connections_closed_total for a close reason: one of
/// ok, auth_failed, replay, timeout_handshake, timeout_idle, timeout_connect, dns_failed,
/// target_refused, target_private, error, stale_timestamp.
const char* closeStatusLabel(CloseReason reason);

// TcpStats's counters (stats_macros.h). The socket byte counts are as read from and written to
// the sockets: ciphertext on the client side of a server.
#define SR_TCP_STATS(FIELD, HISTOGRAM)                                                 \
  FIELD(accepted, "accepted", TcpConnectionsOpened, "")                                \
  FIELD(active, "active", None, "")                                                    \
  FIELD(accept_errors, "accept_errors", TcpAcceptErrors, "") /* EMFILE, ENFILE, ... */ \
  /* Closed at accept (issue 15 §4): pre-authentication bounds, descriptors exhausted. */  \
  FIELD(refused_source, "refused.source", TcpAcceptRefused, "reason=source")              \
  FIELD(refused_worker, "refused.worker", TcpAcceptRefused, "reason=worker")              \
  FIELD(refused_no_fd, "refused.no_fd", TcpAcceptRefused, "reason=no_fd")                 \
  /* --acl (relay/acl): where a local sent a connection; targets a server refused. */  \
  FIELD(acl_bypass, "acl.bypass", AclDecisions, "decision=bypass")                        \
  FIELD(acl_proxy, "acl.proxy", AclDecisions, "decision=proxy")                           \
  FIELD(acl_block, "acl.block", AclDecisions, "decision=block")                           \
  FIELD(auth_failed, "auth_failed", None, "")                /* no key opened it */    \
  FIELD(replayed_salts, "replayed_salts", None, "")                                    \
  FIELD(stale_timestamps, "stale_timestamps", None, "") /* 2022: more than 30 s off */  \
  FIELD(bad_addresses, "bad_addresses", None, "")                                      \
  FIELD(bytes_from_clients, "bytes_from_clients", None, "")                            \
  FIELD(bytes_to_clients, "bytes_to_clients", None, "")                                \
  FIELD(bytes_from_remotes, "bytes_from_remotes", None, "")                            \
  FIELD(bytes_to_remotes, "bytes_to_remotes", None, "")

/// Plain per-worker counters, written by the worker's loop only (ARCHITECTURE.md: no shared
/// atomics on the hot path). Summed across workers when read.
struct TcpStats {
  SR_STATS_MEMBERS(SR_TCP_STATS)
  std::array<uint64_t, static_cast<size_t>(CloseReason::kCount)> closed{};

  void add(const TcpStats& other);
  /// "accepted=.. active=.. ... bytes_to_remotes=.. closed{done=.. ...}" for the log; closed{}
  /// lists the reasons that happened.
  std::string summary() const;
  static std::span<const FieldSpec<TcpStats>> fields();
};

}  // namespace shadowrelay::relay
