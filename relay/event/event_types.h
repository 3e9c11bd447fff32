// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>

namespace shadowrelay::relay {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

/// Where an EventLoop reads the time (EventLoopOptions::time_source). The default is the real
/// Clock; tests give a manual one (tests/testing/manual_clock.h) so that timers fire when the
/// test moves the time on, not when the machine gets round to it.
class TimeSource {
 public:
  virtual ~TimeSource() = default;
  /// Monotonic; may be called from the loop thread at any time.
  virtual TimePoint now() const = 0;
};

/// Readiness bits passed to IoWatcher callbacks; kReadable and kWritable are also interest bits.
enum IoEvents : uint32_t {
  kReadable = 1,  // EPOLLIN: data, EOF or a pending accept.
  kWritable = 2,  // EPOLLOUT.
  kClosed = 4,  // EPOLLERR | EPOLLHUP: reported whenever the watcher is in epoll; not an interest.
};


}  // namespace shadowrelay::relay
