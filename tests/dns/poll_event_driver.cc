// SPDX-License-Identifier: Apache-2.0
#include "tests/dns/poll_event_driver.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <utility>

namespace shadowrelay::dns::testing {

struct PollEventDriver::WatchState {
  int fd = -1;
  uint32_t interest = 0;
  std::function<void(uint32_t)> on_ready;
  bool alive = true;
};

struct PollEventDriver::TimerState {
  std::function<void()> on_fire;
  bool armed = false;
  Clock::time_point deadline;
  bool alive = true;
};

class PollEventDriver::Watch final : public FdWatch {
 public:
  Watch(PollEventDriver& driver, std::shared_ptr<WatchState> state)
      : driver_(driver), state_(std::move(state)) {}
  ~Watch() override {
    state_->alive = false;
    auto& v = driver_.watches_;
    v.erase(std::remove(v.begin(), v.end(), state_), v.end());
  }
  void setInterest(uint32_t interest) override { state_->interest = interest; }

 private:
  PollEventDriver& driver_;
  std::shared_ptr<WatchState> state_;
};

class PollEventDriver::Timer final : public DriverTimer {
 public:
  Timer(PollEventDriver& driver, std::shared_ptr<TimerState> state)
      : driver_(driver), state_(std::move(state)) {}
  ~Timer() override {
    state_->alive = false;
    state_->armed = false;
    auto& v = driver_.timers_;
    v.erase(std::remove(v.begin(), v.end(), state_), v.end());
  }
  void armAfter(std::chrono::nanoseconds delay) override {
    state_->armed = true;
    state_->deadline = Clock::now() + std::max(delay, std::chrono::nanoseconds::zero());
  }
  void cancel() override { state_->armed = false; }

 private:
  PollEventDriver& driver_;
  std::shared_ptr<TimerState> state_;
};

PollEventDriver::PollEventDriver() = default;

PollEventDriver::~PollEventDriver() {
  if (!watches_.empty() || !timers_.empty()) {
    std::fprintf(stderr, "PollEventDriver destroyed with %zu watches and %zu timers alive\n",
                 watches_.size(), timers_.size());
    std::abort();
  }
}

FdWatchPtr PollEventDriver::watchFd(int fd, uint32_t interest,
                                    std::function<void(uint32_t)> on_ready) {
  auto state = std::make_shared<WatchState>();
  state->fd = fd;
  state->interest = interest;
  state->on_ready = std::move(on_ready);
  watches_.push_back(state);
  return std::make_unique<Watch>(*this, std::move(state));
}

DriverTimerPtr PollEventDriver::createTimer(std::function<void()> on_fire) {
  auto state = std::make_shared<TimerState>();
  state->on_fire = std::move(on_fire);
  timers_.push_back(state);
  return std::make_unique<Timer>(*this, std::move(state));
}

void PollEventDriver::runOnce(std::chrono::milliseconds max_wait) {
  const Clock::time_point start = Clock::now();
  Clock::time_point wake = start + max_wait;
  for (const auto& t : timers_) {
    if (t->armed) {
      wake = std::min(wake, t->deadline);
    }
  }
  // Round up so that a timer is never polled for "0 ms" repeatedly before it is due.
  const auto wait = std::chrono::ceil<std::chrono::milliseconds>(std::max(
      wake - start, Clock::duration::zero()));

  // Snapshots keep every state alive while its callback runs, even if the owner destroys it.
  std::vector<std::shared_ptr<WatchState>> polled;
  std::vector<pollfd> fds;
  for (const auto& w : watches_) {
    if (w->interest == 0) {
      continue;
    }
    short events = 0;
    events |= (w->interest & kFdReadable) != 0 ? POLLIN : 0;
    events |= (w->interest & kFdWritable) != 0 ? POLLOUT : 0;
    fds.push_back(pollfd{w->fd, events, 0});
    polled.push_back(w);
  }
  const int n = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
  if (n < 0 && errno != EINTR) {
    std::perror("poll");
    std::abort();
  }
  for (size_t i = 0; n > 0 && i < fds.size(); ++i) {
    const short re = fds[i].revents;
    if (re == 0 || !polled[i]->alive) {
      continue;
    }
    uint32_t events = 0;
    events |= (re & POLLIN) != 0 ? kFdReadable : 0;
    events |= (re & POLLOUT) != 0 ? kFdWritable : 0;
    events |= (re & (POLLERR | POLLHUP | POLLNVAL)) != 0 ? kFdClosed : 0;
    std::shared_ptr<WatchState> keep = polled[i];
    keep->on_ready(events);
  }

  const Clock::time_point now = Clock::now();
  std::vector<std::shared_ptr<TimerState>> due;
  for (const auto& t : timers_) {
    if (t->armed && t->deadline <= now) {
      due.push_back(t);
    }
  }
  std::sort(due.begin(), due.end(),
            [](const auto& a, const auto& b) { return a->deadline < b->deadline; });
  for (const auto& t : due) {
    // Re-check: an earlier callback may have cancelled, re-armed or destroyed this timer.
    if (t->alive && t->armed && t->deadline <= now) {
      t->armed = false;
      t->on_fire();
    }
  }
}

bool PollEventDriver::runUntil(const std::function<bool()>& done,
                               std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!done()) {
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      return false;
    }
    runOnce(std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(50),
        std::chrono::ceil<std::chrono::milliseconds>(deadline - now)));
  }
  return true;
}

void PollEventDriver::runFor(std::chrono::milliseconds duration) {
  runUntil([] { return false; }, duration);
}

size_t PollEventDriver::watchCount() const { return watches_.size(); }

size_t PollEventDriver::armedTimerCount() const {
  return static_cast<size_t>(
      std::count_if(timers_.begin(), timers_.end(), [](const auto& t) { return t->armed; }));
}

}  // namespace shadowrelay::dns::testing
