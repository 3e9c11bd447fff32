// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace shadowrelay::api::metrics {

/// What the standard process_* metrics report about this process.
struct ProcessStats {
  double cpu_seconds = 0;  // user + system
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;           // RLIMIT_NOFILE soft limit
  double start_time_seconds = 0;  // since the Unix epoch
};

/// Reads this process's stats from /proc/self/stat, /proc/stat, /proc/self/fd and getrlimit().
/// Linux only; an error if /proc cannot be read or parsed.
absl::StatusOr<ProcessStats> readProcessStats();

/// The Prometheus client conventions' process_* families (process_cpu_seconds_total,
/// process_resident_memory_bytes, ...), read at every scrape. Emits nothing when /proc cannot be
/// read. Stateless and thread-safe.
class ProcessCollector final : public prometheus::Collectable {
 public:
  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace shadowrelay::api::metrics
