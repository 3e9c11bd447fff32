// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstdint>
#include <string>

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
  OverLimit,         // the user is at max_connections or over its data quota
  Revoked,           // the user was deleted, disabled or given a new key
  kCount,
};

const char* closeReasonName(CloseReason reason);

/// The `status` label of shadowrelay_tcp_connections_closed_total for a close reason: one of
/// ok, auth_failed, replay, timeout_handshake, timeout_idle, timeout_connect, dns_failed,
/// target_refused, target_private, error.
const char* closeStatusLabel(CloseReason reason);

/// Plain per-worker counters, written by the worker's loop only (ARCHITECTURE.md: no shared
/// atomics on the hot path). Summed across workers when read.
struct TcpStats {
  uint64_t accepted = 0;
  uint64_t active = 0;
  uint64_t accept_errors = 0;        // EMFILE/ENFILE and other accept failures
  uint64_t auth_failed = 0;          // first chunk did not open
  uint64_t replayed_salts = 0;
  uint64_t bad_addresses = 0;
  uint64_t bytes_from_clients = 0;   // as read from the client socket (ciphertext on server)
  uint64_t bytes_to_clients = 0;
  uint64_t bytes_from_remotes = 0;
  uint64_t bytes_to_remotes = 0;
  std::array<uint64_t, static_cast<size_t>(CloseReason::kCount)> closed{};

  void add(const TcpStats& other);
  /// "accepted=.. active=.. closed{done=..,...} bytes ..." for the log.
  std::string summary() const;
};

}  // namespace shadowrelay::relay
