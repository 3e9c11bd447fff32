// SPDX-License-Identifier: Apache-2.0
#include "relay/event/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace shadowrelay::relay {

namespace {

// epoll data tag of the wakeup eventfd; watcher tags are (generation << 32 | slot) and slot
// 0xffffffff is never handed out.
constexpr uint64_t kWakeupTag = ~uint64_t{0};
constexpr uint32_t kMaxSlots = 0xffffffffu;
constexpr size_t kMaxEvents = 4096;

// Setup failures and broken invariants of the kernel interface: crash loudly (STYLE.md B4).
[[noreturn]] void fatalErrno(const char* what) {
  const int saved = errno;
  std::fprintf(stderr, "shadowrelay: fatal: %s: %s\n", what, std::strerror(saved));
  std::abort();
}

[[noreturn]] void fatal(const char* what) {
  std::fprintf(stderr, "shadowrelay: fatal: %s\n", what);
  std::abort();
}

int createEpoll() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) {
    fatalErrno("epoll_create1");
  }
  return fd;
}

int createEventFd() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) {
    fatalErrno("eventfd");
  }
  return fd;
}

uint32_t toIoEvents(uint32_t epoll_events) {
  uint32_t events = 0;
  if (epoll_events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP)) {
    events |= kReadable;
  }
  if (epoll_events & EPOLLOUT) {
    events |= kWritable;
  }
  if (epoll_events & (EPOLLERR | EPOLLHUP)) {
    events |= kClosed;
  }
  return events;
}

}  // namespace

EventLoop::EventLoop() : EventLoop(EventLoopOptions{}) {}

uint64_t EventLoop::unixSeconds() const {
  using std::chrono::system_clock;
  const system_clock::time_point wall =
      options_.time_source == nullptr
          ? system_clock::now()
          : wall_at_start_ + std::chrono::duration_cast<system_clock::duration>(
                                 options_.time_source->now() - steady_at_start_);
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(wall.time_since_epoch()).count();
  return seconds < 0 ? 0 : static_cast<uint64_t>(seconds);
}

EventLoop::EventLoop(EventLoopOptions options)
    : options_(options),
      epoll_fd_(createEpoll()),
      wakeup_fd_(createEventFd()),
      owner_(std::this_thread::get_id()),
      now_(readClock()) {
  events_.resize(options_.initial_events == 0 ? 1 : options_.initial_events);
  epoll_event ev{};
  ev.events = EPOLLIN;  // Level-triggered in both modes: drainWakeup() reads it empty anyway.
  ev.data.u64 = kWakeupTag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wakeup_fd_, &ev) != 0) {
    fatalErrno("epoll_ctl(ADD eventfd)");
  }
}

EventLoop::~EventLoop() {
  assert(!running_);
  // Whatever is still pending may own watchers and timers: destroy it while they can unregister.
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  for (;;) {
    std::vector<std::function<void()>> posted;
    {
      absl::MutexLock lock(&post_mutex_);
      posted.swap(posted_);
    }
    std::vector<std::function<void()>> deferred;
    deferred.swap(deferred_tasks_);
    const bool idle = posted.empty() && deferred.empty() && to_delete_.empty();
    posted.clear();
    deferred.clear();
    clearDeferredDeleteList();
    if (idle) {
      break;
    }
  }
  assert(watcher_count_ == 0 && "an IoWatcher outlived its EventLoop");
  assert(timers_.empty() && "an armed Timer outlived its EventLoop");
  ::close(wakeup_fd_);
  ::close(epoll_fd_);
}

void EventLoop::assertInLoopThread() const {
  assert(isInLoopThread() && "must be called on the loop thread");
}

void EventLoop::bindToCurrentThread() {
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
}

void EventLoop::run() {
  bindToCurrentThread();
  assert(!running_ && "EventLoop::run() is not re-entrant");
  running_ = true;
  updateTime();
  while (!stop_requested_.load(std::memory_order_acquire)) {
    iterate(-1);
  }
  stop_requested_.store(false, std::memory_order_relaxed);
  running_ = false;
}

void EventLoop::runOnce(std::chrono::milliseconds max_wait) {
  bindToCurrentThread();
  assert(!running_ && "EventLoop::runOnce() is not re-entrant");
  running_ = true;
  const auto ms = max_wait.count();
  iterate(ms < 0 ? 0 : (ms > INT_MAX ? INT_MAX : static_cast<int>(ms)));
  running_ = false;
}

void EventLoop::stop() {
  stop_requested_.store(true, std::memory_order_release);
  wakeup();
}

void EventLoop::post(std::function<void()> fn) {
  bool was_empty;
  {
    absl::MutexLock lock(&post_mutex_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(fn));
  }
  // Whoever makes the queue non-empty wakes the loop; the loop empties it after every wakeup.
  if (was_empty) {
    wakeup();
  }
}

void EventLoop::defer(std::function<void()> fn) {
  assertInLoopThread();
  deferred_tasks_.push_back(std::move(fn));
}

void EventLoop::runInLoop(std::function<void()> fn) {
  if (isInLoopThread()) {
    fn();
  } else {
    post(std::move(fn));
  }
}

void EventLoop::deferredDelete(std::unique_ptr<DeferredDeletable> obj) {
  assertInLoopThread();
  if (obj != nullptr) {
    to_delete_.push_back(std::move(obj));
  }
}

size_t EventLoop::pendingPostedTasks() const {
  absl::MutexLock lock(&post_mutex_);
  return posted_.size();
}

void EventLoop::wakeup() {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: the loop is awake anyway.
  [[maybe_unused]] const ssize_t n = ::write(wakeup_fd_, &one, sizeof(one));
}

void EventLoop::drainWakeup() {
  uint64_t value;
  while (::read(wakeup_fd_, &value, sizeof(value)) == static_cast<ssize_t>(sizeof(value))) {
  }
  ++stats_.wakeups;
}

// ---- watchers ----

int EventLoop::epollCtl(int op, const IoWatcher& watcher) {
  epoll_event ev{};
  if (watcher.interest_ & kReadable) {
    ev.events |= EPOLLIN;
  }
  if (watcher.interest_ & kWritable) {
    ev.events |= EPOLLOUT;
  }
  ev.data.u64 = (uint64_t{slots_[watcher.slot_].generation} << 32) | watcher.slot_;
  ++stats_.epoll_ctl_calls;
  return ::epoll_ctl(epoll_fd_, op, watcher.fd_, &ev) == 0 ? 0 : errno;
}

void EventLoop::addWatcher(IoWatcher& watcher) {
  assertInLoopThread();
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    if (slots_.size() >= kMaxSlots) {
      fatal("IoWatcher slots exhausted");
    }
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  slots_[slot].watcher = &watcher;
  watcher.slot_ = slot;
  ++watcher_count_;
  if (watcher.interest_ != 0) {
    watcher.last_error_ = epollCtl(EPOLL_CTL_ADD, watcher);
    watcher.in_epoll_ = watcher.last_error_ == 0;
  }
}

void EventLoop::updateWatcher(IoWatcher& watcher, uint32_t interest) {
  assertInLoopThread();
  watcher.interest_ = interest;
  int error = 0;
  if (interest == 0) {
    if (watcher.in_epoll_) {
      error = epollCtl(EPOLL_CTL_DEL, watcher);
      watcher.in_epoll_ = false;
    }
  } else if (watcher.in_epoll_) {
    error = epollCtl(EPOLL_CTL_MOD, watcher);
  } else {
    error = epollCtl(EPOLL_CTL_ADD, watcher);
    watcher.in_epoll_ = error == 0;
  }
  watcher.last_error_ = error;
}

void EventLoop::removeWatcher(IoWatcher& watcher) {
  assertInLoopThread();
  if (watcher.in_epoll_) {
    // EBADF/ENOENT: the fd was closed first, which already removed it (if not dup()ed).
    epollCtl(EPOLL_CTL_DEL, watcher);
    watcher.in_epoll_ = false;
  }
  WatcherSlot& slot = slots_[watcher.slot_];
  slot.watcher = nullptr;
  ++slot.generation;  // Events already fetched for this slot are now stale.
  free_slots_.push_back(watcher.slot_);
  --watcher_count_;
  if (dispatching_watcher_ == &watcher) {
    dispatching_watcher_ = nullptr;
  }
}

void EventLoop::dispatchEvent(const epoll_event& event) {
  const uint64_t tag = event.data.u64;
  if (tag == kWakeupTag) {
    drainWakeup();
    return;
  }
  const uint32_t index = static_cast<uint32_t>(tag);
  const uint32_t generation = static_cast<uint32_t>(tag >> 32);
  if (index >= slots_.size() || slots_[index].generation != generation ||
      slots_[index].watcher == nullptr) {
    ++stats_.stale_events;
    return;
  }
  IoWatcher& watcher = *slots_[index].watcher;
  const uint32_t events = toIoEvents(event.events) & (watcher.interest_ | kClosed);
  if (events == 0) {
    return;  // Interest was dropped earlier in this batch.
  }
  ++stats_.io_callbacks;
  // The callback runs from the stack so that it may destroy its own watcher.
  IoWatcher::Callback cb = std::move(watcher.cb_);
  dispatching_watcher_ = &watcher;
  cb(events);
  if (dispatching_watcher_ != nullptr) {
    watcher.cb_ = std::move(cb);
    dispatching_watcher_ = nullptr;
  }
}

// ---- timers ----

void EventLoop::scheduleTimer(Timer& timer, TimePoint deadline) {
  assertInLoopThread();
  timers_.schedule(timer, deadline);
}

void EventLoop::cancelTimer(Timer& timer) {
  assertInLoopThread();
  timers_.remove(timer);
}

void EventLoop::runExpiredTimers() {
  // Timers armed by these callbacks (even with a past deadline) wait for the next iteration.
  const uint64_t seq_limit = timers_.nextSequence();
  while (Timer* timer = timers_.popExpired(now_, seq_limit)) {
    ++stats_.timers_fired;
    Timer::Callback cb = std::move(timer->cb_);
    firing_timer_ = timer;
    cb();
    if (firing_timer_ != nullptr) {
      timer->cb_ = std::move(cb);
      firing_timer_ = nullptr;
    }
  }
}

// ---- the iteration ----

int EventLoop::computeTimeoutMs(int max_wait_ms) const {
  if (!deferred_tasks_.empty() || !to_delete_.empty() ||
      stop_requested_.load(std::memory_order_relaxed)) {
    return 0;
  }
  int timeout = max_wait_ms;
  if (!timers_.empty()) {
    const auto left = timers_.earliestDeadline() - readClock();
    int ms = 0;
    if (left.count() > 0) {
      // Round up: waking early would only cost a spurious iteration.
      const auto rounded = std::chrono::ceil<std::chrono::milliseconds>(left).count();
      ms = rounded > INT_MAX ? INT_MAX : static_cast<int>(rounded);
    }
    if (timeout < 0 || ms < timeout) {
      timeout = ms;
    }
  }
  return timeout;
}

void EventLoop::iterate(int max_wait_ms) {
  const int timeout = computeTimeoutMs(max_wait_ms);
  const int n = ::epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), timeout);
  const int saved_errno = errno;
  ++stats_.iterations;
  updateTime();
  if (n < 0 && saved_errno != EINTR) {
    errno = saved_errno;
    fatalErrno("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    dispatchEvent(events_[i]);
  }
  if (n == static_cast<int>(events_.size()) && events_.size() < kMaxEvents) {
    events_.resize(events_.size() * 2);
  }
  runExpiredTimers();
  runPostedTasks();
  runDeferredTasks();
  clearDeferredDeleteList();
}

void EventLoop::runDeferredTasks() {
  if (deferred_tasks_.empty()) {
    return;
  }
  running_tasks_.swap(deferred_tasks_);
  for (auto& task : running_tasks_) {
    ++stats_.deferred_tasks_run;
    task();
  }
  running_tasks_.clear();
}

void EventLoop::runPostedTasks() {
  {
    absl::MutexLock lock(&post_mutex_);
    if (posted_.empty()) {
      return;
    }
    running_posted_.swap(posted_);  // Both vectors keep their capacity: no steady-state malloc.
  }
  for (auto& task : running_posted_) {
    ++stats_.posted_tasks_run;
    task();
  }
  running_posted_.clear();
}

void EventLoop::clearDeferredDeleteList() {
  while (!to_delete_.empty()) {
    deleting_.swap(to_delete_);
    for (auto& obj : deleting_) {  // FIFO; destructors may deferredDelete() more.
      obj.reset();
      ++stats_.deferred_deletes;
    }
    deleting_.clear();
  }
}

}  // namespace shadowrelay::relay
