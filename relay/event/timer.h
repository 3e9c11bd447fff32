// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>

#include "relay/event/event_types.h"
#include "relay/event/timer_heap.h"

namespace shadowrelay::relay {

class EventLoop;

/// A one-shot, re-armable timer on one loop (RAII: cancelled on destruction). Does not outlive
/// its loop. Loop-thread only once the loop runs. The callback may destroy this Timer or any
/// other; a timer cancelled before its turn in the same pass does not fire.
class Timer {
 public:
  using Callback = std::function<void()>;

  Timer(EventLoop& loop, Callback cb);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  /// Arms (or re-arms) at loop.now() + delay; loop.now() is cached per iteration. A negative or
  /// zero delay fires on the next iteration, never inside the pass that armed it.
  void armAfter(std::chrono::nanoseconds delay);
  void armAt(TimePoint when);
  void cancel();
  bool armed() const { return heap_index_ != TimerHeap::kNotInHeap; }
  /// Meaningful only while armed().
  TimePoint deadline() const { return deadline_; }

 private:
  friend class TimerHeap;
  friend class EventLoop;

  EventLoop& loop_;
  Callback cb_;
  size_t heap_index_ = TimerHeap::kNotInHeap;
  TimePoint deadline_{};
};

}  // namespace shadowrelay::relay
