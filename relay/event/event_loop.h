// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "relay/event/deferred_deletable.h"
#include "relay/event/event_types.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/event/timer_heap.h"

struct epoll_event;

namespace shadowrelay::relay {

struct EventLoopOptions {
  /// epoll_wait batch size; doubles (up to 4096) whenever a batch comes back full.
  size_t initial_events = 128;
  /// Null: the real steady clock. Otherwise the loop's time, which must outlive the loop.
  const TimeSource* time_source = nullptr;
};

/// Plain counters written by the loop thread only; read them there or after run() returned.
struct EventLoopStats {
  uint64_t iterations = 0;       // epoll_wait calls
  uint64_t io_callbacks = 0;     // IoWatcher callbacks run
  uint64_t stale_events = 0;     // events dropped: watcher gone earlier in the batch
  uint64_t epoll_ctl_calls = 0;  // ADD, MOD and DEL
  uint64_t timers_fired = 0;
  uint64_t posted_tasks_run = 0;
  uint64_t deferred_tasks_run = 0;
  uint64_t deferred_deletes = 0;  // objects freed from the deferred-deletion list
  uint64_t wakeups = 0;           // eventfd reads (post() and stop() from anywhere)
};

/// The reactor: one epoll instance, a timer heap, a post() queue (the one mutex-guarded field)
/// and a deferred-deletion list. Owned by one thread: the constructing thread until run() binds
/// the calling thread. Only stop(), post() and isInLoopThread() are safe from other threads.
///
/// Each iteration: epoll_wait (bounded by the next timer), refresh now(), IoWatcher callbacks,
/// expired timers, posted tasks, defer()red tasks, then free the deferred-deletion list.
class EventLoop {
 public:
  EventLoop();
  explicit EventLoop(EventLoopOptions options);
  /// Must not run concurrently with run(). Adopts the calling thread, destroys pending posted and
  /// deferred tasks without running them, frees deferred deletions. Watchers and armed timers
  /// must already be gone.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Binds the loop to the calling thread and iterates until stop(). The iteration in which
  /// stop() is seen completes first (its whole batch, timers, tasks and deletions). Work still
  /// queued afterwards stays queued for a later run() or is destroyed by ~EventLoop.
  void run();
  /// One iteration waiting at most `max_wait` (less if a timer is due). Binds the calling thread.
  void runOnce(std::chrono::milliseconds max_wait);
  /// Thread-safe; a stop() before run() makes that run() return without iterating.
  void stop();

  /// Thread-safe. Runs `fn` on the loop thread, in post order, after the I/O callbacks and
  /// timers of an iteration. `fn` must not capture the poster by reference (it may be gone).
  void post(std::function<void()> fn);
  /// Loop thread only, no lock: runs `fn` at the end of this iteration (after callbacks, timers
  /// and posted tasks, before deferred deletions); from a deferred task, in the next iteration.
  void defer(std::function<void()> fn);
  /// Runs `fn` now if on the loop thread, else post()s it.
  void runInLoop(std::function<void()> fn);
  /// Loop thread only. Frees `obj` after the current epoll batch, FIFO.
  void deferredDelete(std::unique_ptr<DeferredDeletable> obj);

  /// Cached: refreshed after each epoll_wait. Loop thread only.
  TimePoint now() const { return now_; }
  void updateTime() { now_ = readClock(); }
  /// The loop's clock read now (not the cached now()): Clock::now() unless
  /// EventLoopOptions::time_source is set.
  TimePoint readClock() const {
    return options_.time_source == nullptr ? Clock::now() : options_.time_source->now();
  }

  /// The wall clock in Unix seconds (Shadowsocks 2022 header timestamps), read when asked (the
  /// relay of 2017 streams never does). With a time_source: the wall clock at construction
  /// advanced by the source's time since then, so tests move it with their manual clock.
  uint64_t unixSeconds() const;

  bool isInLoopThread() const {
    return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }
  /// Aborts in debug builds when called off the loop thread.
  void assertInLoopThread() const;

  const EventLoopStats& stats() const { return stats_; }
  size_t watcherCount() const { return watcher_count_; }
  size_t armedTimerCount() const { return timers_.size(); }
  uint64_t timerHeapMoves() const { return timers_.moves(); }
  size_t pendingPostedTasks() const;

 private:
  friend class IoWatcher;
  friend class Timer;

  struct WatcherSlot {
    IoWatcher* watcher = nullptr;
    uint32_t generation = 0;
  };

  // IoWatcher and Timer internals.
  void addWatcher(IoWatcher& watcher);
  void updateWatcher(IoWatcher& watcher, uint32_t interest);
  void removeWatcher(IoWatcher& watcher);
  int epollCtl(int op, const IoWatcher& watcher);
  void scheduleTimer(Timer& timer, TimePoint deadline);
  void cancelTimer(Timer& timer);

  void bindToCurrentThread();
  void iterate(int max_wait_ms);
  int computeTimeoutMs(int max_wait_ms) const;
  void dispatchEvent(const epoll_event& event);
  void runExpiredTimers();
  void runDeferredTasks();
  void runPostedTasks();
  void clearDeferredDeleteList();
  void wakeup();
  void drainWakeup();

  const EventLoopOptions options_;
  const int epoll_fd_;
  const int wakeup_fd_;
  std::atomic<std::thread::id> owner_;
  std::atomic<bool> stop_requested_{false};
  bool running_ = false;
  TimePoint now_;
  const std::chrono::system_clock::time_point wall_at_start_ = std::chrono::system_clock::now();
  const TimePoint steady_at_start_ = now_;
  EventLoopStats stats_;

  std::vector<epoll_event> events_;
  std::vector<WatcherSlot> slots_;
  std::vector<uint32_t> free_slots_;
  size_t watcher_count_ = 0;
  // The watcher / timer whose callback is running; cleared by its destructor, which tells the
  // dispatcher not to touch it afterwards.
  IoWatcher* dispatching_watcher_ = nullptr;
  Timer* firing_timer_ = nullptr;

  TimerHeap timers_;
  std::vector<std::function<void()>> deferred_tasks_;
  std::vector<std::function<void()>> running_tasks_;
  std::vector<std::function<void()>> running_posted_;
  std::vector<std::unique_ptr<DeferredDeletable>> to_delete_;
  std::vector<std::unique_ptr<DeferredDeletable>> deleting_;

  mutable absl::Mutex post_mutex_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(post_mutex_);
};

}  // namespace shadowrelay::relay
