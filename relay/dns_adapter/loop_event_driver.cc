// SPDX-License-Identifier: Apache-2.0
#include "relay/dns_adapter/loop_event_driver.h"

#include <type_traits>
#include <utility>

#include "relay/event/event_loop.h"
#include "relay/event/event_types.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"

namespace shadowrelay::relay {
namespace {

static_assert(dns::kFdReadable == kReadable && dns::kFdWritable == kWritable &&
                  dns::kFdClosed == kClosed,
              "dns:: readiness bits are passed through unchanged");
static_assert(std::is_same_v<dns::EventDriver::Clock, Clock>, "one monotonic clock");

/// IoWatcher already allows destruction from inside its own callback and removes the fd from
/// epoll in its destructor, as dns::FdWatch requires.
class LoopFdWatch final : public dns::FdWatch {
 public:
  LoopFdWatch(EventLoop& loop, int fd, uint32_t interest, IoWatcher::Callback cb)
      : watcher_(loop, fd, interest, std::move(cb)) {}
  void setInterest(uint32_t interest) override { watcher_.setInterest(interest); }

 private:
  IoWatcher watcher_;
};

class LoopTimer final : public dns::DriverTimer {
 public:
  LoopTimer(EventLoop& loop, Timer::Callback cb) : loop_(loop), timer_(loop, std::move(cb)) {}
  void armAfter(std::chrono::nanoseconds delay) override {
    // From the clock read now rather than the loop's cached now(): c-ares computed `delay` from
    // its own clock reading, and firing early would only cost a spurious wakeup.
    timer_.armAt(loop_.readClock() + std::chrono::duration_cast<Clock::duration>(delay));
  }
  void cancel() override { timer_.cancel(); }

 private:
  EventLoop& loop_;
  Timer timer_;
};

}  // namespace

dns::FdWatchPtr LoopEventDriver::watchFd(int fd, uint32_t interest,
                                         std::function<void(uint32_t events)> on_ready) {
  return std::make_unique<LoopFdWatch>(loop_, fd, interest, std::move(on_ready));
}

dns::DriverTimerPtr LoopEventDriver::createTimer(std::function<void()> on_fire) {
  return std::make_unique<LoopTimer>(loop_, std::move(on_fire));
}

dns::EventDriver::Clock::time_point LoopEventDriver::now() const { return loop_.now(); }

}  // namespace shadowrelay::relay
