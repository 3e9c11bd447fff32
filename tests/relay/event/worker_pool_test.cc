// SPDX-License-Identifier: Apache-2.0
#include "relay/event/worker_pool.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/relay/event/fd_count.h"

namespace shadowrelay::relay {
namespace {

using namespace std::chrono_literals;
using testing::countOpenFds;

TEST(WorkerPoolTest, ZeroMeansOneWorkerPerCpu) {
  WorkerPool pool(0);
  const size_t cpus = std::thread::hardware_concurrency();
  EXPECT_EQ(pool.size(), cpus == 0 ? 1 : cpus);
}

TEST(WorkerPoolTest, RunOnEachRunsOnEveryWorkerThenDoneOnceOnTheLastWorker) {
  WorkerPool pool(3);
  pool.start();
  std::mutex mu;
  std::set<std::thread::id> threads;
  std::vector<size_t> indexes;
  std::atomic<int> done_calls{0};
  std::thread::id done_thread;
  absl::Notification done;
  pool.runOnEach(
      [&](EventLoop& loop, size_t index) {
        EXPECT_TRUE(loop.isInLoopThread());
        EXPECT_EQ(&loop, &pool.loop(index));
        EXPECT_TRUE(pool.isWorkerThread());
        std::lock_guard<std::mutex> lock(mu);
        threads.insert(std::this_thread::get_id());
        indexes.push_back(index);
      },
      [&] {
        ++done_calls;
        done_thread = std::this_thread::get_id();
        done.Notify();
      });
  done.WaitForNotification();
  pool.stop();
  EXPECT_EQ(done_calls, 1);
  EXPECT_EQ(threads.size(), 3u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(threads.count(done_thread), 1u);  // The last worker ran it.
  std::sort(indexes.begin(), indexes.end());
  EXPECT_EQ(indexes, (std::vector<size_t>{0, 1, 2}));
  EXPECT_FALSE(pool.isWorkerThread());
}

TEST(WorkerPoolTest, DoneIsPostedToTheReplyLoop) {
  EventLoop main_loop;
  WorkerPool pool(2);
  pool.start();
  std::atomic<int> ran{0};
  bool done_on_main_loop = false;
  pool.runOnEach([&](EventLoop&, size_t) { ++ran; },
                 [&] {
                   done_on_main_loop = main_loop.isInLoopThread();
                   main_loop.stop();
                 },
                 &main_loop);
  main_loop.run();
  EXPECT_TRUE(done_on_main_loop);
  EXPECT_EQ(ran, 2);
}

TEST(WorkerPoolTest, PerWorkerStateIsCreatedAndDrainedOnItsOwnLoop) {
  WorkerPool pool(2);
  pool.start();
  // One timer per worker, created, fired and destroyed on that worker (the drain pattern).
  std::vector<std::unique_ptr<Timer>> timers(pool.size());
  std::atomic<int> fired{0};
  absl::Notification all_fired;
  pool.runOnEachAndWait([&](EventLoop& loop, size_t i) {
    timers[i] = std::make_unique<Timer>(loop, [&] {
      if (++fired == 2) {
        all_fired.Notify();
      }
    });
    timers[i]->armAfter(1ms);
  });
  ASSERT_TRUE(all_fired.WaitForNotificationWithTimeout(absl::Seconds(30)));
  pool.runOnEachAndWait([&](EventLoop& loop, size_t i) {
    EXPECT_EQ(loop.stats().timers_fired, 1u);
    timers[i].reset();
    EXPECT_EQ(loop.armedTimerCount(), 0u);
  });
  pool.stop();
}

TEST(WorkerPoolTest, ConcurrentRunOnEachCallersEachGetOneDone) {
  constexpr int kCallers = 4;
  constexpr int kRounds = 50;
  WorkerPool pool(2);
  pool.start();
  std::atomic<int> fn_calls{0};
  std::atomic<int> done_calls{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) {
        pool.runOnEach([&](EventLoop&, size_t) { ++fn_calls; }, [&] { ++done_calls; });
      }
    });
  }
  for (auto& t : callers) {
    t.join();
  }
  pool.runOnEachAndWait([](EventLoop&, size_t) {});  // FIFO per loop: all earlier work is done.
  EXPECT_EQ(fn_calls, kCallers * kRounds * 2);
  EXPECT_EQ(done_calls, kCallers * kRounds);
}

TEST(WorkerPoolTest, StopIsIdempotentAndPendingWorkIsFreedUnrun) {
  auto token = std::make_shared<int>(0);
  std::atomic<int> ran{0};
  {
    WorkerPool pool(2);
    pool.start();
    pool.stop();
    pool.stop();
    pool.runOnEach([&ran, token](EventLoop&, size_t) { ++ran; }, [&ran, token] { ++ran; });
    EXPECT_EQ(pool.loop(0).pendingPostedTasks(), 1u);
    EXPECT_GT(token.use_count(), 1);
  }
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(token.use_count(), 1);
}

TEST(WorkerPoolTest, NeverStartedPoolStopsCleanly) {
  WorkerPool pool(2);
  pool.stop();
  EXPECT_EQ(pool.size(), 2u);
}

TEST(WorkerPoolTest, NoFdOrThreadLeftBehind) {
  const size_t before = countOpenFds();
  {
    WorkerPool pool(4);
    EXPECT_EQ(countOpenFds(), before + 8);  // epoll + eventfd per loop
    pool.start();
    pool.runOnEachAndWait([](EventLoop&, size_t) {});
  }
  EXPECT_EQ(countOpenFds(), before);
}

}  // namespace
}  // namespace shadowrelay::relay
