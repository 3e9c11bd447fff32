// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "relay/event/event_loop.h"

namespace shadowrelay::relay {

/// N worker threads, one EventLoop each (muduo's one loop per thread). The pool owns the loops
/// and threads; start(), stop() and the destructor belong to the owning (main) thread.
/// Workers block SIGINT, SIGTERM and SIGHUP so that only a SignalWatcher ever sees them.
class WorkerPool {
 public:
  using EachFn = std::function<void(EventLoop& loop, size_t index)>;

  /// 0 workers means std::thread::hardware_concurrency() (at least 1). Loops exist from here
  /// on, bound to the constructing thread until their worker starts.
  explicit WorkerPool(size_t workers, EventLoopOptions options = {});
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Spawns the threads (once). Call after blocking signals in the calling thread.
  void start();
  /// Stops every loop and joins the threads; idempotent. Loops stay valid (not running) until
  /// the pool is destroyed; their pending work is destroyed with them, unrun.
  void stop();

  size_t size() const { return loops_.size(); }
  EventLoop& loop(size_t i) { return *loops_[i]; }
  bool isWorkerThread() const;

  /// Thread-safe. Posts a copy of `fn` to every worker; `fn(loop, index)` runs on worker
  /// `index`. When all have run, `done` is posted to `reply_loop` if given, else called on the
  /// last finishing worker thread. If the pool stops first, `done` never runs.
  void runOnEach(EachFn fn, std::function<void()> done = nullptr, EventLoop* reply_loop = nullptr);
  /// runOnEach() and block until every worker ran `fn`. Not from a worker thread; needs start().
  void runOnEachAndWait(EachFn fn);

 private:
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::vector<std::thread> threads_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace shadowrelay::relay
