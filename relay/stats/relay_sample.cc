// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/relay_sample.h"

#include <algorithm>

namespace shadowrelay::relay {

namespace {
constexpr double kKiB = 1024;
constexpr std::array<double, 12> kConnectionBytes = {
    kKiB,         4 * kKiB,         16 * kKiB,         64 * kKiB,        256 * kKiB,
    1024 * kKiB,  4096 * kKiB,      16384 * kKiB,      65536 * kKiB,     262144 * kKiB,
    1048576 * kKiB, 4194304 * kKiB};
constexpr std::array<double, 12> kConnectionSeconds = {0.1, 0.5, 1,   5,    10,   30,
                                                       60,  300, 900, 1800, 3600, 14400};
// A probe's first flight: nothing, a few bytes, around a salt and a header, a full request.
constexpr std::array<double, 12> kProbeBytes = {0,  16,  32,  50,   64,   100,
                                                128, 256, 512, 1024, 4096, 65536};
constexpr std::array<double, 10> kDnsSeconds = {0.001, 0.005, 0.01, 0.025, 0.05,
                                                0.1,   0.25,  0.5,  1,     10};
}  // namespace

std::span<const double> connectionBytesBounds() { return kConnectionBytes; }
std::span<const double> connectionSecondsBounds() { return kConnectionSeconds; }
std::span<const double> probeBytesBounds() { return kProbeBytes; }
std::span<const double> dnsSecondsBounds() { return kDnsSeconds; }

FixedHistogram::FixedHistogram(std::span<const double> bounds)
    : bounds_(bounds), buckets_(bounds.size() + 1, 0) {}

void FixedHistogram::observe(double value) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  ++buckets_[static_cast<size_t>(it - bounds_.begin())];
  sum_ += value;
  ++count_;
}

void FixedHistogram::add(const FixedHistogram& other) {
  for (size_t i = 0; i < buckets_.size() && i < other.buckets_.size(); ++i) {
    buckets_[i] += other.buckets_[i];
  }
  sum_ += other.sum_;
  count_ += other.count_;
}

void UserTraffic::add(const UserTraffic& o) {
  tcp_bytes_up += o.tcp_bytes_up;
  tcp_bytes_down += o.tcp_bytes_down;
  udp_bytes_up += o.udp_bytes_up;
  udp_bytes_down += o.udp_bytes_down;
  udp_packets_up += o.udp_packets_up;
  udp_packets_down += o.udp_packets_down;
  tcp_connections += o.tcp_connections;
  refused_over_limit += o.refused_over_limit;
  for (size_t i = 0; i < closed.size(); ++i) closed[i] += o.closed[i];
}

void DnsSample::add(const DnsSample& o) {
  for (size_t i = 0; i < results.size(); ++i) results[i] += o.results[i];
  cache_hits += o.cache_hits;
  cache_misses += o.cache_misses;
  lookup_seconds.add(o.lookup_seconds);
}

void WorkerSample::add(const WorkerSample& o) {
  tcp.add(o.tcp);
  udp.add(o.udp);
  for (const auto& [name, traffic] : o.users) users[name].add(traffic);
  retired_users.add(o.retired_users);
  connection_bytes.add(o.connection_bytes);
  connection_seconds.add(o.connection_seconds);
  probe_bytes.add(o.probe_bytes);
  dns.add(o.dns);
  tcp_active += o.tcp_active;
  udp_associations_active += o.udp_associations_active;
}

}  // namespace shadowrelay::relay
