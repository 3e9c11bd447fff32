// SPDX-License-Identifier: Apache-2.0
#include "relay/event/timer.h"

#include <utility>

#include "relay/event/event_loop.h"

namespace shadowrelay::relay {

Timer::Timer(EventLoop& loop, Callback cb) : loop_(loop), cb_(std::move(cb)) {}

Timer::~Timer() {
  cancel();
  if (loop_.firing_timer_ == this) {
    loop_.firing_timer_ = nullptr;
  }
}

void Timer::armAfter(std::chrono::nanoseconds delay) {
  if (delay.count() < 0) {
    delay = std::chrono::nanoseconds(0);
  }
  loop_.scheduleTimer(*this, loop_.now() + std::chrono::duration_cast<Clock::duration>(delay));
}

void Timer::armAt(TimePoint when) { loop_.scheduleTimer(*this, when); }

void Timer::cancel() {
  if (armed()) {
    loop_.cancelTimer(*this);
  }
}

}  // namespace shadowrelay::relay
