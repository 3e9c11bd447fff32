// SPDX-License-Identifier: Apache-2.0
#include "relay/app/sample_hub.h"

#include <map>

namespace shadowrelay::relay {

namespace {

api::users::TrafficCounters counters(const UserTraffic& t) {
  api::users::TrafficCounters c;
  c.bytes_up = t.tcp_bytes_up + t.udp_bytes_up;
  c.bytes_down = t.tcp_bytes_down + t.udp_bytes_down;
  c.tcp_connections = t.tcp_connections;
  c.udp_packets = t.udp_packets_up + t.udp_packets_down;
  return c;
}

api::users::TrafficCounters minus(const api::users::TrafficCounters& a,
                                  const api::users::TrafficCounters& b) {
  return {a.bytes_up - b.bytes_up, a.bytes_down - b.bytes_down,
          a.tcp_connections - b.tcp_connections, a.udp_packets - b.udp_packets};
}

}  // namespace

SampleHub::SampleHub(size_t workers, RelayObserver* next)
    : next_(next), latest_(workers), taken_(workers) {}

void SampleHub::publish(size_t worker, const WorkerSample& sample) {
  {
    absl::MutexLock lock(&mu_);
    if (worker < latest_.size()) latest_[worker] = sample;
  }
  if (next_ != nullptr) next_->publish(worker, sample);
}

std::vector<api::users::TrafficDelta> SampleHub::takeTrafficDeltas() {
  std::map<std::string, api::users::TrafficCounters> sums;
  {
    absl::MutexLock lock(&mu_);
    for (size_t w = 0; w < latest_.size(); ++w) {
      for (const auto& [name, traffic] : latest_[w].users) {
        if (name.empty()) continue;  // sessions that never identified a user
        UserTraffic& taken = taken_[w][name];
        const api::users::TrafficCounters delta = minus(counters(traffic), counters(taken));
        taken = traffic;
        if (delta == api::users::TrafficCounters{}) continue;
        sums[name] += delta;
      }
    }
  }
  std::vector<api::users::TrafficDelta> out;
  out.reserve(sums.size());
  for (auto& [name, delta] : sums) out.push_back({name, delta});
  return out;
}

uint64_t SampleHub::activeTcpSessions() const {
  absl::MutexLock lock(&mu_);
  uint64_t total = 0;
  for (const WorkerSample& s : latest_) total += s.tcp_active;
  return total;
}

uint64_t SampleHub::udpAssociations() const {
  absl::MutexLock lock(&mu_);
  uint64_t total = 0;
  for (const WorkerSample& s : latest_) total += s.udp_associations_active;
  return total;
}

}  // namespace shadowrelay::relay
