// SPDX-License-Identifier: Apache-2.0
#pragma once
// Synthetic worker samples for the exporter's tests and the sample exporter.

#include <cstddef>
#include <cstdint>

#include "relay/stats/relay_sample.h"

namespace shadowrelay::testing {

/// A sample of worker `worker` after `step` rounds of traffic: every counter, histogram and
/// per-user field is non-zero for step >= 1 and grows with step (gauges vary). Users "alice" and
/// "" on every worker, "bob" on odd workers.
relay::WorkerSample grownSample(size_t worker, uint64_t step);

}  // namespace shadowrelay::testing
