// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <functional>

#include "dns/event_driver.h"

namespace shadowrelay::relay {

class EventLoop;

/// dns::EventDriver over the project's reactor: watches are relay::IoWatchers, timers are
/// relay::Timers. Does not own the loop, which must outlive the driver and everything it made.
/// Loop-thread only.
class LoopEventDriver final : public dns::EventDriver {
 public:
  explicit LoopEventDriver(EventLoop& loop) : loop_(loop) {}

  // dns::EventDriver
  dns::FdWatchPtr watchFd(int fd, uint32_t interest,
                          std::function<void(uint32_t events)> on_ready) override;
  dns::DriverTimerPtr createTimer(std::function<void()> on_fire) override;
  Clock::time_point now() const override;

 private:
  EventLoop& loop_;
};

}  // namespace shadowrelay::relay
