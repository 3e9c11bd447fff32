// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/metric_families.h"

#include <cstddef>
#include <iterator>

namespace shadowrelay::relay {

const MetricFamilyInfo& metricFamily(Metric metric) {
  static constexpr MetricFamilyInfo kFamilies[] = {
      {"", MetricType::Counter, ""},  // None
#define SR_METRIC_INFO(id, name, type, help) {name, MetricType::type, help},
      SR_RELAY_METRIC_FAMILIES(SR_METRIC_INFO)
#undef SR_METRIC_INFO
  };
  static_assert(std::size(kFamilies) == static_cast<size_t>(Metric::kCount));
  const auto i = static_cast<size_t>(metric);
  return kFamilies[i < std::size(kFamilies) ? i : 0];
}

}  // namespace shadowrelay::relay
