// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "dns/event_driver.h"

namespace shadowrelay::dns::testing {

/// A minimal single-threaded poll(2) loop implementing dns::EventDriver: a real loop (real
/// sockets, real time), small enough to test dns/ without the project's reactor. Test use only.
class PollEventDriver final : public EventDriver {
 public:
  PollEventDriver();
  ~PollEventDriver() override;

  // dns::EventDriver
  FdWatchPtr watchFd(int fd, uint32_t interest,
                     std::function<void(uint32_t events)> on_ready) override;
  DriverTimerPtr createTimer(std::function<void()> on_fire) override;
  Clock::time_point now() const override { return Clock::now(); }

  /// One iteration: waits at most `max_wait` for an fd or the next timer, then runs the
  /// callbacks of the ready fds and of the timers that are due.
  void runOnce(std::chrono::milliseconds max_wait);
  /// Iterates until `done()` or until `timeout` has passed; returns done().
  bool runUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  /// Iterates for `duration`.
  void runFor(std::chrono::milliseconds duration);

  size_t watchCount() const;
  size_t armedTimerCount() const;

 private:
  struct WatchState;
  struct TimerState;
  class Watch;
  class Timer;

  std::vector<std::shared_ptr<WatchState>> watches_;
  std::vector<std::shared_ptr<TimerState>> timers_;
};

}  // namespace shadowrelay::dns::testing
