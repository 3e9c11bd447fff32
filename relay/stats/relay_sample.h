// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a worker reports to the metrics exporter (ARCHITECTURE.md: the relay reports through a
// narrow observer interface and knows nothing of Prometheus). Every worker keeps one
// WorkerSample in plain integers on its own loop and hands a copy to the RelayObserver at least
// once a second; the exporter sums the copies of all workers when it is scraped. Every field but
// the gauges only grows, so a sum of copies never goes backwards.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "dns/resolver.h"
#include "relay/stats/tcp_stats.h"
#include "relay/stats/udp_stats.h"

namespace shadowrelay::relay {

/// A histogram with fixed upper bounds, in plain integers (Prometheus semantics: bucket i counts
/// observations <= bounds[i]; the last bucket is +Inf). Buckets are not cumulative here.
class FixedHistogram {
 public:
  explicit FixedHistogram(std::span<const double> bounds);

  void observe(double value);
  /// Adds another histogram with the same bounds.
  void add(const FixedHistogram& other);

  std::span<const double> bounds() const { return bounds_; }
  /// bounds().size() + 1 counts; the last one is the +Inf bucket.
  const std::vector<uint64_t>& buckets() const { return buckets_; }
  double sum() const { return sum_; }
  uint64_t count() const { return count_; }

 private:
  std::span<const double> bounds_;
  std::vector<uint64_t> buckets_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

/// Bucket bounds of the histograms below (static storage).
std::span<const double> connectionBytesBounds();    // 1 KiB .. 4 GiB, x4
std::span<const double> connectionSecondsBounds();  // 0.1 s .. 4 h
std::span<const double> probeBytesBounds();         // 0 .. 64 KiB
std::span<const double> dnsSecondsBounds();         // 1 ms .. 10 s

/// One user's traffic as one worker saw it.
struct UserTraffic {
  uint64_t tcp_bytes_up = 0;  // payload, client to target
  uint64_t tcp_bytes_down = 0;
  uint64_t udp_bytes_up = 0;
  uint64_t udp_bytes_down = 0;
  uint64_t udp_packets_up = 0;
  uint64_t udp_packets_down = 0;
  uint64_t tcp_connections = 0;  // sessions that identified this user
  /// Sessions refused because the user was over a limit (max_connections or data quota).
  uint64_t refused_over_limit = 0;
  /// Closed sessions by CloseReason (map to the status label with closeStatusLabel()).
  std::array<uint64_t, static_cast<size_t>(CloseReason::kCount)> closed{};

  void add(const UserTraffic& other);
};

/// DNS as one worker's resolver saw it.
struct DnsSample {
  /// Lookups completed by ResolveStatus (cache answers included).
  std::array<uint64_t, 8> results{};
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  FixedHistogram lookup_seconds{dnsSecondsBounds()};  // c-ares lookups only

  void add(const DnsSample& other);
};

/// Everything one worker counted since it started. Copyable; loop-thread only while live.
struct WorkerSample {
  TcpStats tcp;  // accepted, closed by reason, auth failures, raw socket bytes, ...
  UdpStats udp;  // server -u and UDP over TCP together
  /// By user name. "" holds sessions that never identified a user (probes, failed handshakes)
  /// and, with --metrics-per-user=false, everybody.
  /// node_hash_map: sessions and associations keep pointers to their entry.
  absl::node_hash_map<std::string, UserTraffic> users;
  /// The counters of users deleted from the table (their entries leave `users`, so that the
  /// user label stays bounded by the users that exist). Folded into "" when the exporter drops
  /// the user label, so that totals never go backwards.
  UserTraffic retired_users;
  FixedHistogram connection_bytes{connectionBytesBounds()};      // payload both ways, at close
  FixedHistogram connection_seconds{connectionSecondsBounds()};  // accept to close
  FixedHistogram probe_bytes{probeBytesBounds()};  // bytes a failed handshake sent
  DnsSample dns;
  // Gauges: the value when the copy was made.
  uint64_t tcp_active = 0;
  uint64_t udp_associations_active = 0;

  void add(const WorkerSample& other);
};

/// Receives the workers' samples. Implemented by the metrics exporter (api/metrics); called on
/// worker threads, so implementations must be thread-safe and quick (copy and return).
class RelayObserver {
 public:
  virtual ~RelayObserver() = default;
  /// The latest sample of worker `worker` (0 .. workers-1); replaces that worker's previous one.
  virtual void publish(size_t worker, const WorkerSample& sample) = 0;
};

}  // namespace shadowrelay::relay
