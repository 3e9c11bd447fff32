// SPDX-License-Identifier: Apache-2.0
#include "tests/api/metrics/sample_data.h"

#include "relay/stats/tcp_stats.h"

namespace shadowrelay::testing {

relay::WorkerSample grownSample(size_t worker, uint64_t step) {
  using relay::CloseReason;
  const uint64_t k = step;
  const uint64_t w = worker + 1;
  relay::WorkerSample s;
  s.tcp.accepted = 100 * k * w;
  s.tcp.accept_errors = k;
  for (size_t r = 0; r < s.tcp.closed.size(); ++r) {
    s.tcp.closed[r] = (r + 1) * k * w;
  }
  auto& alice = s.users["alice"];
  alice.tcp_bytes_up = 1000 * k * w;
  alice.tcp_bytes_down = 5000 * k * w;
  alice.udp_bytes_up = 300 * k;
  alice.udp_bytes_down = 700 * k;
  alice.udp_packets_up = 3 * k;
  alice.udp_packets_down = 7 * k;
  alice.tcp_connections = 10 * k;
  alice.refused_over_limit = k;
  alice.refused_over_devices = k;
  alice.closed[static_cast<size_t>(CloseReason::Done)] = 8 * k;
  alice.closed[static_cast<size_t>(CloseReason::IdleTimeout)] = 2 * k;
  auto& nobody = s.users[""];
  nobody.closed[static_cast<size_t>(CloseReason::AuthFailed)] = 4 * k;
  nobody.closed[static_cast<size_t>(CloseReason::BadAddress)] = k;
  nobody.closed[static_cast<size_t>(CloseReason::ReplayedSalt)] = k;
  nobody.closed[static_cast<size_t>(CloseReason::HandshakeTimeout)] = 3 * k;
  if (worker % 2 == 1) {
    auto& bob = s.users["bob"];
    bob.tcp_bytes_up = 11 * k;
    bob.tcp_bytes_down = 13 * k;
    bob.udp_bytes_up = 17 * k;
    bob.udp_bytes_down = 19 * k;
    bob.udp_packets_up = k;
    bob.udp_packets_down = 2 * k;
    bob.closed[static_cast<size_t>(CloseReason::ConnectFailed)] = k;
  }
  for (uint64_t i = 0; i < k; ++i) {
    s.connection_bytes.observe(static_cast<double>(2048 * (i % 7 + 1)));
    s.connection_seconds.observe(0.3 * static_cast<double>(i % 5 + 1));
    s.probe_bytes.observe(static_cast<double>(40 + i % 3));
    s.dns.lookup_seconds.observe(0.002 * static_cast<double>(i % 4 + 1));
  }
  for (size_t i = 0; i < s.dns.results.size(); ++i) {
    s.dns.results[i] = (i + 1) * k;
  }
  s.dns.cache_hits = 50 * k;
  s.dns.cache_misses = 20 * k;
  s.udp.packets_in = 10 * k;
  s.udp.packets_out = 9 * k;
  s.udp.dropped_open = 1 * k;
  s.udp.dropped_replay = 2 * k;
  s.udp.dropped_address = 3 * k;
  s.udp.dropped_refused = 4 * k;
  s.udp.dropped_over_quota = 10 * k;
  s.udp.dropped_resolve = 5 * k;
  s.udp.dropped_send = 6 * k;
  s.udp.dropped_too_big = 7 * k;
  s.udp.dropped_fragment = 8 * k;
  s.udp.dropped_foreign = 9 * k;
  s.udp.associations = 30 * k;
  s.udp.evictions = 2 * k;
  s.udp.expirations = 5 * k;
  s.tcp_active = (k * 7 + w) % 13;
  s.udp_associations_active = (k * 5 + w) % 11;
  return s;
}

}  // namespace shadowrelay::testing
