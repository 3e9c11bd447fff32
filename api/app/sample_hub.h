// SPDX-License-Identifier: Apache-2.0
#pragma once
// Where the workers' counters meet the control plane: each worker hands its WorkerSample here
// once a second (RelayObserver); the hub keeps the latest one per worker, forwards it to the
// metrics exporter, and turns the growth of the per-user traffic into the deltas the user
// registry wants (data quotas, the API's traffic counters).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "api/users/user_registry.h"
#include "relay/stats/relay_sample.h"

namespace shadowrelay::api::app {

class SampleHub final : public relay::RelayObserver {
 public:
  /// `next` (may be null, e.g. without metrics) also receives every sample.
  SampleHub(size_t workers, relay::RelayObserver* next);

  /// Thread-safe; called by the workers.
  void publish(size_t worker, const relay::WorkerSample& sample) override;

  /// The traffic of each user since the previous call, over all workers; users without traffic
  /// are left out. For the registry (UserRegistry::addTraffic).
  std::vector<users::TrafficDelta> takeTrafficDeltas();
  /// Gauges summed over the workers' latest samples.
  uint64_t activeTcpSessions() const;
  uint64_t udpAssociations() const;

 private:
  relay::RelayObserver* const next_;
  mutable absl::Mutex mu_;
  std::vector<relay::WorkerSample> latest_ ABSL_GUARDED_BY(mu_);
  /// Per worker: the traffic already handed out by takeTrafficDeltas().
  std::vector<absl::flat_hash_map<std::string, relay::UserTraffic>> taken_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shadowrelay::api::app
