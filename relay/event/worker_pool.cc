// SPDX-License-Identifier: Apache-2.0
#include "relay/event/worker_pool.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cassert>
#include <cstdio>
#include <utility>

#include "absl/synchronization/notification.h"

namespace shadowrelay::relay {

namespace {

struct RunOnEachState {
  explicit RunOnEachState(size_t n, std::function<void()> d, EventLoop* r)
      : remaining(n), done(std::move(d)), reply_loop(r) {}
  std::atomic<size_t> remaining;
  std::function<void()> done;
  EventLoop* reply_loop;
};

void blockProcessSignals() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
}

}  // namespace

WorkerPool::WorkerPool(size_t workers, EventLoopOptions options) {
  if (workers == 0) {
    workers = std::thread::hardware_concurrency();
    if (workers == 0) {
      workers = 1;
    }
  }
  loops_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) {
    loops_.push_back(std::make_unique<EventLoop>(options));
  }
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::start() {
  assert(!started_ && "WorkerPool::start() called twice");
  if (started_) {
    return;
  }
  started_ = true;
  threads_.reserve(loops_.size());
  for (size_t i = 0; i < loops_.size(); ++i) {
    threads_.emplace_back([this, i] {
      blockProcessSignals();
      char name[16];
      std::snprintf(name, sizeof(name), "sr-worker-%zu", i);
      pthread_setname_np(pthread_self(), name);
      loops_[i]->run();
    });
  }
}

void WorkerPool::stop() {
  if (stopped_) {
    return;
  }
  assert(!isWorkerThread() && "WorkerPool::stop() from a worker would join itself");
  stopped_ = true;
  for (auto& loop : loops_) {
    loop->stop();
  }
  for (auto& thread : threads_) {
    thread.join();
  }
  threads_.clear();
}

bool WorkerPool::isWorkerThread() const {
  const auto self = std::this_thread::get_id();
  for (const auto& thread : threads_) {
    if (thread.get_id() == self) {
      return true;
    }
  }
  return false;
}

void WorkerPool::runOnEach(EachFn fn, std::function<void()> done, EventLoop* reply_loop) {
  auto state = std::make_shared<RunOnEachState>(loops_.size(), std::move(done), reply_loop);
  for (size_t i = 0; i < loops_.size(); ++i) {
    EventLoop* loop = loops_[i].get();
    loop->post([fn, i, loop, state] {
      fn(*loop, i);
      if (state->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1 || !state->done) {
        return;
      }
      if (state->reply_loop != nullptr) {
        state->reply_loop->post(std::move(state->done));
      } else {
        state->done();
      }
    });
  }
}

void WorkerPool::runOnEachAndWait(EachFn fn) {
  assert(started_ && !stopped_ && !isWorkerThread());
  absl::Notification all_done;
  runOnEach(std::move(fn), [&all_done] { all_done.Notify(); });
  all_done.WaitForNotification();
}

}  // namespace shadowrelay::relay
