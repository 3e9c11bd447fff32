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
#include "relay/stats/stats_macros.h"
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

// UserTraffic's counters (stats_macros.h); the exporter adds the label user="<name>".
#define SR_USER_TRAFFIC(FIELD, HISTOGRAM)                                                    \
  FIELD(tcp_bytes_up, "tcp_bytes_up", DataBytes, "proto=tcp,direction=upload") /* payload */ \
  FIELD(tcp_bytes_down, "tcp_bytes_down", DataBytes, "proto=tcp,direction=download")         \
  FIELD(udp_bytes_up, "udp_bytes_up", DataBytes, "proto=udp,direction=upload")               \
  FIELD(udp_bytes_down, "udp_bytes_down", DataBytes, "proto=udp,direction=download")         \
  FIELD(udp_packets_up, "udp_packets_up", UdpPackets, "direction=upload")                    \
  FIELD(udp_packets_down, "udp_packets_down", UdpPackets, "direction=download")              \
  /* Sessions that identified this user. */                                                  \
  FIELD(tcp_connections, "tcp_connections", None, "")                                        \
  /* Sessions refused because the user was over a limit (max_connections or data quota). */  \
  FIELD(refused_over_limit, "refused_over_limit", TcpRefusedOverLimit, "")                    \
  /* TCP sessions and UDP datagrams refused because the user had expired. */                 \
  FIELD(refused_expired, "refused_expired", UserRefused, "reason=expired")                    \
  /* Sessions and associations of a new device beyond max_devices. */                        \
  FIELD(refused_over_devices, "refused_over_devices", UserRefused, "reason=over_devices")

/// One user's traffic as one worker saw it.
struct UserTraffic {
  SR_STATS_MEMBERS(SR_USER_TRAFFIC)
  /// Closed sessions by CloseReason (map to the status label with closeStatusLabel()).
  std::array<uint64_t, static_cast<size_t>(CloseReason::kCount)> closed{};
  /// Nanoseconds the user's TCP traffic waited for its bytes_per_second, [0] upload, [1]
  /// download (exported in seconds).
  std::array<uint64_t, 2> rate_limited_nanos{};

  void add(const UserTraffic& other);
  static std::span<const FieldSpec<UserTraffic>> fields();
};

/// How a host name lookup ended, as the stats count it: the relay's mirror of
/// dns::ResolveStatus (relay/stats depends on nothing of dns; relay/dns_adapter maps one to the
/// other).
enum class DnsOutcome : uint8_t {
  Ok,
  NxDomain,
  NoData,
  Timeout,
  ServerFailure,
  InvalidName,
  Cancelled,
  Internal,
  kCount,
};

/// "ok", "nxdomain", "nodata", "timeout", "server_failure", "invalid_name", "cancelled",
/// "internal": the `result` label of shadowrelay_dns_queries_total.
const char* dnsOutcomeLabel(DnsOutcome outcome);

// DnsSample's counters (stats_macros.h).
#define SR_DNS_SAMPLE(FIELD, HISTOGRAM)                   \
  FIELD(cache_hits, "cache_hits", DnsCacheHits, "")       \
  FIELD(cache_misses, "cache_misses", DnsCacheMisses, "") \
  /* c-ares lookups only */                               \
  HISTOGRAM(lookup_seconds, dnsSecondsBounds, DnsLookupDuration)

/// DNS as one worker's resolver saw it.
struct DnsSample {
  /// Lookups completed, by DnsOutcome (cache answers included).
  std::array<uint64_t, static_cast<size_t>(DnsOutcome::kCount)> results{};
  SR_STATS_MEMBERS(SR_DNS_SAMPLE)

  void add(const DnsSample& other);
  static std::span<const FieldSpec<DnsSample>> fields();
  static std::span<const HistogramSpec<DnsSample>> histograms();
};

// WorkerSample's own gauges and histograms (stats_macros.h). The gauges are the value when the
// copy was made.
#define SR_WORKER_SAMPLE(FIELD, HISTOGRAM)                                      \
  /* Payload both ways, at close. */                                            \
  HISTOGRAM(connection_bytes, connectionBytesBounds, TcpConnectionBytes)        \
  /* Accept to close. */                                                        \
  HISTOGRAM(connection_seconds, connectionSecondsBounds, TcpConnectionDuration) \
  /* Bytes a failed handshake sent. */                                          \
  HISTOGRAM(probe_bytes, probeBytesBounds, ProbeBytes)                          \
  FIELD(tcp_active, "tcp_active", TcpConnectionsActive, "")                     \
  FIELD(udp_associations_active, "udp_associations_active", UdpAssociationsActive, "")

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
  DnsSample dns;
  SR_STATS_MEMBERS(SR_WORKER_SAMPLE)

  void add(const WorkerSample& other);
  static std::span<const FieldSpec<WorkerSample>> fields();
  static std::span<const HistogramSpec<WorkerSample>> histograms();
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
