// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "relay/stats/stats_macros.h"

namespace shadowrelay::relay {

// UdpStats's counters (stats_macros.h). The keys of summary() are read by tests/e2e and
// tests/bench/udp_bench.py.
#define SR_UDP_STATS(FIELD, HISTOGRAM)                                                       \
  FIELD(packets_in, "packets_in", None, "")   /* from peers, opened and forwarded */         \
  FIELD(packets_out, "packets_out", None, "") /* back to peers */                            \
  FIELD(bytes_in, "bytes_in", None, "")                                                      \
  FIELD(bytes_out, "bytes_out", None, "")                                                    \
  FIELD(dropped_open, "dropped.open", UdpDropped, "reason=open") /* short or did not open */ \
  FIELD(dropped_replay, "dropped.replay", UdpDropped, "reason=replay")                       \
  FIELD(dropped_address, "dropped.address", UdpDropped, "reason=address")                    \
  FIELD(dropped_refused, "dropped.refused", UdpDropped, "reason=refused") /* private */      \
  FIELD(dropped_over_quota, "dropped.over_quota", UdpDropped, "reason=over_quota")           \
  FIELD(dropped_resolve, "dropped.resolve", UdpDropped, "reason=resolve")                    \
  FIELD(dropped_send, "dropped.send", UdpDropped, "reason=send") /* far side or peer */      \
  /* Larger than a UDP datagram can carry. */                                                \
  FIELD(dropped_too_big, "dropped.too_big", UdpDropped, "reason=too_big")                    \
  /* SOCKS5: FRAG != 0 (fragments are not reassembled). */                                   \
  FIELD(dropped_fragment, "dropped.fragment", UdpDropped, "reason=fragment")                 \
  /* SOCKS5: not from the associating client's IP. */                                        \
  FIELD(dropped_foreign, "dropped.foreign", UdpDropped, "reason=foreign")                    \
  /* Shadowsocks 2022: a timestamp more than 30 s from our clock. */                         \
  FIELD(dropped_stale, "dropped.stale_timestamp", UdpDropped, "reason=stale_timestamp")      \
  /* Shadowsocks 2022: a packet ID its session's window has seen or no longer covers. */     \
  FIELD(dropped_replayed_packet, "dropped.replayed_packet_id", UdpDropped,                   \
        "reason=replayed_packet_id")                                                         \
  /* Shadowsocks 2022 client: a reply to another client session, or from a third server   \
     session while the one before is still live. */                                          \
  FIELD(dropped_session, "dropped.session", UdpDropped, "reason=session")                    \
  /* Issue 15 hardening. A datagram from an unknown source while its source's or the       \
     worker's budget of failed trial decryptions is spent (--udp-trial-budget). */            \
  FIELD(dropped_trial_budget, "dropped.trial_budget", UdpDropped, "reason=trial_budget")      \
  /* A new association of a user already at --udp-user-max-associations. */                   \
  FIELD(dropped_user_cap, "dropped.user_associations", UdpDropped,                           \
        "reason=user_associations")                                                           \
  /* Waiting on DNS or in a UoT queue would pass the worker's --udp-queue-bytes. */           \
  FIELD(dropped_memory, "dropped.memory", UdpDropped, "reason=memory")                        \
  /* Its user was deleted, disabled, rotated or went over quota while it was on its way. */   \
  FIELD(dropped_revoked, "dropped.revoked", UdpDropped, "reason=revoked")                     \
  /* gost-style UDP over TCP on local's SOCKS5 control connection (docs/UDP_OVER_TCP.md     \
     §12): replies dropped because the connection's reply queue was full, malformed frames   \
     (each closes the connection); datagrams framed by the client and framed back to it. */  \
  FIELD(dropped_gost_queue, "dropped.gost_queue", UdpDropped, "reason=gost_queue")           \
  FIELD(dropped_gost_malformed, "dropped.gost_malformed", UdpDropped,                        \
        "reason=gost_malformed")                                                             \
  /* Over the user's bytes_per_second (issue 18 §3), either direction. */                    \
  FIELD(dropped_over_rate, "dropped.over_rate", UdpDropped, "reason=over_rate")              \
  FIELD(gost_in, "gost.in", UdpGostFramed, "direction=upload")                               \
  FIELD(gost_out, "gost.out", UdpGostFramed, "direction=download")                           \
  FIELD(associations, "associations", UdpAssociationsCreated, "")                            \
  FIELD(evictions, "evictions", UdpAssociationsEvicted, "")                                  \
  FIELD(expirations, "expirations", Timeouts, "kind=udp")

struct UdpStats {
  SR_STATS_MEMBERS(SR_UDP_STATS)

  void add(const UdpStats& other);
  /// "packets_in=.. packets_out=.. bytes_in=.. bytes_out=.. dropped{open=.. ...} associations=..
  /// evictions=.. expirations=.." for the log.
  std::string summary() const;
  static std::span<const FieldSpec<UdpStats>> fields();
};

}  // namespace shadowrelay::relay
