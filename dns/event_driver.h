// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace shadowrelay::dns {

/// Readiness bits for EventDriver::watchFd. The values equal relay::kReadable, kWritable and
/// kClosed so that an adapter can pass them through.
inline constexpr uint32_t kFdReadable = 1;
inline constexpr uint32_t kFdWritable = 2;
/// Error or hang-up; reported whatever the interest.
inline constexpr uint32_t kFdClosed = 4;

/// Watches one fd for readiness. Does not own the fd. Destroying it stops the watch at once,
/// while the fd is still open (so that it can be removed from epoll before the owner closes it).
class FdWatch {
 public:
  virtual ~FdWatch() = default;
  /// `interest` is a mask of kFdReadable | kFdWritable; 0 pauses the watch.
  virtual void setInterest(uint32_t interest) = 0;
};
using FdWatchPtr = std::unique_ptr<FdWatch>;

/// A one-shot timer that can be re-armed. Destroying it cancels it.
class DriverTimer {
 public:
  virtual ~DriverTimer() = default;
  /// (Re)arms the timer: it fires once, `delay` from now (0: on the next loop iteration).
  virtual void armAfter(std::chrono::nanoseconds delay) = 0;
  virtual void cancel() = 0;
};
using DriverTimerPtr = std::unique_ptr<DriverTimer>;

/// The event loop the resolver runs on: all that dns/ needs of the project's reactor
/// (relay/dns_adapter implements it over relay::EventLoop). Every method, and every callback,
/// runs on the loop's thread. Contracts an implementation must keep:
///  - callbacks never run from inside watchFd(), setInterest(), createTimer() or armAfter();
///  - a watch or timer may be destroyed (or cancelled) from inside its own callback, and no
///    callback of it runs after that;
///  - the loop outlives every watch and timer it made.
class EventDriver {
 public:
  using Clock = std::chrono::steady_clock;

  virtual ~EventDriver() = default;

  /// Starts watching `fd` with `interest` (kFdReadable | kFdWritable). `on_ready` receives
  /// the ready bits (kFdReadable, kFdWritable, kFdClosed).
  virtual FdWatchPtr watchFd(int fd, uint32_t interest,
                             std::function<void(uint32_t events)> on_ready) = 0;

  /// A disarmed timer that calls `on_fire` when it expires.
  virtual DriverTimerPtr createTimer(std::function<void()> on_fire) = 0;

  /// The loop's monotonic clock (may be cached per iteration).
  virtual Clock::time_point now() const = 0;
};

}  // namespace shadowrelay::dns
