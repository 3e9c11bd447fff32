// SPDX-License-Identifier: Apache-2.0
#pragma once
// The shadowrelay_* metric families built from the workers' summed sample (api/metrics/README.md
// lists them). Pure functions: no locking, no I/O.

#include <string>
#include <vector>

#include "prometheus/metric_family.h"
#include "relay/stats/relay_sample.h"

namespace shadowrelay::api::metrics {

/// The values of the `status` label of shadowrelay_tcp_connections_closed_total, in a stable
/// order: every relay::closeStatusLabel() value, each once.
const std::vector<std::string>& closeStatuses();

/// The families of one scrape. `total` is the sum of every worker's latest sample. With
/// `per_user` false every user folds into the user "" (--metrics-per-user=false). The user ""
/// is always present, and every label value of a fixed set (status, kind, reason, result) is
/// emitted even at 0, so rate() sees a series from its first increment.
std::vector<prometheus::MetricFamily> relayFamilies(const relay::WorkerSample& total,
                                                    bool per_user);

}  // namespace shadowrelay::api::metrics
