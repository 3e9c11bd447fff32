// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <chrono>

#include "relay/event/event_types.h"

namespace shadowrelay::testing {

/// A clock that stands still until the test moves it: give it to an EventLoop
/// (EventLoopOptions::time_source) and its timers fire in the iteration after advance() passed
/// their deadline, however long the machine took. now() and advance() may be called from any
/// thread; a loop running on another thread sees the new time at its next iteration, so advance
/// it from a post()ed task (which also wakes the loop).
class ManualClock final : public relay::TimeSource {
 public:
  /// Starts at an arbitrary fixed point far from the clock's epoch.
  ManualClock() = default;

  relay::TimePoint now() const override {
    return relay::TimePoint(relay::Clock::duration(ticks_.load(std::memory_order_acquire)));
  }
  void advance(std::chrono::nanoseconds by) {
    ticks_.fetch_add(std::chrono::duration_cast<relay::Clock::duration>(by).count(),
                     std::memory_order_acq_rel);
  }

 private:
  std::atomic<relay::Clock::rep> ticks_{
      std::chrono::duration_cast<relay::Clock::duration>(std::chrono::hours(1000)).count()};
};

}  // namespace shadowrelay::testing
