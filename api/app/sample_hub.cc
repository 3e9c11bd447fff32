// SPDX-License-Identifier: Apache-2.0
#include "api/app/sample_hub.h"

#include <map>

namespace shadowrelay::api::app {

namespace {

users::TrafficCounters counters(const relay::UserTraffic& t) {
  users::TrafficCounters c;
  c.bytes_up = t.tcp_bytes_up + t.udp_bytes_up;
  c.bytes_down = t.tcp_bytes_down + t.udp_bytes_down;
  c.tcp_connections = t.tcp_connections;
  c.udp_packets = t.udp_packets_up + t.udp_packets_down;
  return c;
}

/// The growth from `before` to `now`. A worker drops the entry of a deleted user; when a user of
/// that name comes back, its counters start again from zero: then all of `now` is new.
users::TrafficCounters growth(const users::TrafficCounters& now,
                                   const users::TrafficCounters& before) {
  if (now.bytes_up < before.bytes_up || now.bytes_down < before.bytes_down ||
      now.tcp_connections < before.tcp_connections || now.udp_packets < before.udp_packets) {
    return now;
  }
  return {now.bytes_up - before.bytes_up, now.bytes_down - before.bytes_down,
          now.tcp_connections - before.tcp_connections, now.udp_packets - before.udp_packets};
}

}  // namespace

SampleHub::SampleHub(size_t workers, relay::RelayObserver* next)
    : next_(next), latest_(workers), taken_(workers) {}

void SampleHub::publish(size_t worker, const relay::WorkerSample& sample) {
  {
    absl::MutexLock lock(&mu_);
    if (worker < latest_.size()) latest_[worker] = sample;
  }
  if (next_ != nullptr) next_->publish(worker, sample);
}

std::vector<users::TrafficDelta> SampleHub::takeTrafficDeltas() {
  std::map<std::string, users::TrafficCounters> sums;
  {
    absl::MutexLock lock(&mu_);
    for (size_t w = 0; w < latest_.size(); ++w) {
      const auto& users = latest_[w].users;
      // Forget the users the worker has retired (deleted from the table).
      absl::erase_if(taken_[w],
                     [&users](const auto& entry) { return !users.contains(entry.first); });
      for (const auto& [name, traffic] : users) {
        if (name.empty()) continue;  // sessions that never identified a user
        relay::UserTraffic& taken = taken_[w][name];
        const users::TrafficCounters delta = growth(counters(traffic), counters(taken));
        taken = traffic;
        if (delta == users::TrafficCounters{}) continue;
        sums[name] += delta;
      }
    }
  }
  std::vector<users::TrafficDelta> out;
  out.reserve(sums.size());
  for (auto& [name, delta] : sums) out.push_back({name, delta});
  return out;
}

uint64_t SampleHub::activeTcpSessions() const {
  absl::MutexLock lock(&mu_);
  uint64_t total = 0;
  for (const relay::WorkerSample& s : latest_) total += s.tcp_active;
  return total;
}

uint64_t SampleHub::udpAssociations() const {
  absl::MutexLock lock(&mu_);
  uint64_t total = 0;
  for (const relay::WorkerSample& s : latest_) total += s.udp_associations_active;
  return total;
}

}  // namespace shadowrelay::api::app
