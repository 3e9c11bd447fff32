// SPDX-License-Identifier: Apache-2.0
#include "relay/upstream/upstream_balancer.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "relay/log.h"

namespace shadowrelay::relay {

namespace {

using Nanos = std::chrono::nanoseconds;

// SplitMix64's finalizer: neighbouring session ids give unrelated picks.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Unmeasured servers sort after the measured ones.
Nanos sortKey(const std::optional<Nanos>& latency) {
  return latency.value_or(Nanos::max());
}

// The weight of a new measurement in the smoothed latency.
constexpr double kNewWeight = 0.3;

double millis(Nanos latency) { return std::chrono::duration<double, std::milli>(latency).count(); }

}  // namespace

UpstreamBalancer::UpstreamBalancer(std::vector<Upstream> servers)
    : servers_(std::move(servers)),
      up_(std::make_unique<std::atomic<bool>[]>(servers_.size())),
      health_(servers_.size()) {
  for (size_t i = 0; i < servers_.size(); ++i) up_[i].store(true, std::memory_order_relaxed);
}

UpstreamBalancer::Plan UpstreamBalancer::plan(uint64_t seed) const {
  Plan order;
  absl::InlinedVector<std::optional<Nanos>, kInlinePlan> latency(servers_.size());
  {
    absl::MutexLock lock(&mutex_);
    for (size_t i = 0; i < servers_.size(); ++i) {
      latency[i] = health_[i].latency;
      if (up(i)) order.push_back(i);
    }
  }
  if (order.empty()) {  // every server down: try them all rather than none
    for (size_t i = 0; i < servers_.size(); ++i) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return sortKey(latency[a]) < sortKey(latency[b]);
  });
  // The first server: at random among those about as fast as the best, or not measured yet.
  const std::optional<Nanos>& best = latency[order.front()];
  const Nanos limit = best ? std::chrono::duration_cast<Nanos>(*best * kTieRatio) + kTieSlack
                           : Nanos::max();
  Plan ties;
  for (size_t position = 0; position < order.size(); ++position) {
    const std::optional<Nanos>& l = latency[order[position]];
    if (!l || *l <= limit) ties.push_back(position);
  }
  const size_t chosen = ties[mix(seed) % ties.size()];
  std::rotate(order.begin(), order.begin() + chosen, order.begin() + chosen + 1);
  return order;
}

void UpstreamBalancer::measure(Health& health, Nanos latency) {
  health.latency = health.latency ? std::chrono::duration_cast<Nanos>(
                                        *health.latency * (1 - kNewWeight) + latency * kNewWeight)
                                  : latency;
}

void UpstreamBalancer::setUp(size_t i, bool up, const char* why) {
  if (this->up(i) == up) return;
  up_[i].store(up, std::memory_order_relaxed);
  if (up) {
    SR_LOG(Info, "server %s marked up: %s", servers_[i].label, why);
  } else {
    SR_LOG(Warn, "server %s marked down: %s; skipped until a probe reaches it",
           servers_[i].label, why);
  }
}

void UpstreamBalancer::onConnected(size_t i, Nanos latency) {
  absl::MutexLock lock(&mutex_);
  Health& health = health_[i];
  health.failures_in_row = 0;
  ++health.sessions;
  measure(health, latency);
}

void UpstreamBalancer::onConnectFailed(size_t i) {
  absl::MutexLock lock(&mutex_);
  Health& health = health_[i];
  ++health.connect_failures;
  if (++health.failures_in_row >= kFailuresToMarkDown) {
    setUp(i, false, "connects failed several times in a row");
  }
}

void UpstreamBalancer::onProbe(size_t i, std::optional<Nanos> latency) {
  absl::MutexLock lock(&mutex_);
  Health& health = health_[i];
  if (!latency) {
    ++health.failures_in_row;
    setUp(i, false, "probe failed");
    return;
  }
  health.failures_in_row = 0;
  measure(health, *latency);
  SR_LOG(Debug, "server %s probed: %.3f ms (smoothed %.3f ms)", servers_[i].label,
         millis(*latency), millis(*health.latency));
  setUp(i, true, "probe reached it");
}

std::vector<UpstreamState> UpstreamBalancer::states() const {
  std::vector<UpstreamState> out;
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < servers_.size(); ++i) {
    const Health& health = health_[i];
    out.push_back({servers_[i].label, up(i), health.latency, health.connect_failures,
                   health.sessions});
  }
  return out;
}

}  // namespace shadowrelay::relay
