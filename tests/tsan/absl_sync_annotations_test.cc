// SPDX-License-Identifier: Apache-2.0
// Data handed between threads by each abseil primitive this code base (and gRPC) uses. Under
// --config=tsan these pass only because tests/tsan/absl_sync_annotations.cc tells TSan what the
// primitives do (Debian's libabsl is not instrumented: without it every test here is reported as
// a race); in the other configurations they are plain concurrency tests.
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 200;

template <typename Fn>
void onThreads(Fn fn) {
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(fn, i);
  for (auto& t : threads) t.join();
}

TEST(AbslSyncAnnotationsTest, MutexLockOrdersWriters) {
  absl::Mutex mu;
  int value = 0;  // a plain int: only the mutex orders the increments
  onThreads([&](int) {
    for (int i = 0; i < kRounds; ++i) {
      absl::MutexLock lock(&mu);
      ++value;
    }
  });
  EXPECT_EQ(value, kThreads * kRounds);
}

TEST(AbslSyncAnnotationsTest, ReaderLocksSeeTheWritersValue) {
  absl::Mutex mu;
  std::vector<int> values(8, 0);
  int sum_seen = 0;
  std::thread writer([&] {
    for (int i = 0; i < kRounds; ++i) {
      absl::WriterMutexLock lock(&mu);
      for (int& v : values) ++v;
    }
  });
  onThreads([&](int) {
    for (int i = 0; i < kRounds; ++i) {
      absl::ReaderMutexLock lock(&mu);
      int first = values[0];
      for (int v : values) EXPECT_EQ(v, first);  // never half an update
    }
  });
  writer.join();
  absl::MutexLock lock(&mu);
  for (int v : values) sum_seen += v;
  EXPECT_EQ(sum_seen, 8 * kRounds);
}

TEST(AbslSyncAnnotationsTest, TryLockOrdersWhenItSucceeds) {
  absl::Mutex mu;
  int value = 0;
  int taken = 0;
  onThreads([&](int) {
    for (int i = 0; i < kRounds; ++i) {
      if (mu.TryLock()) {
        ++value;
        ++taken;
        mu.Unlock();
      }
    }
  });
  EXPECT_EQ(value, taken);
}

TEST(AbslSyncAnnotationsTest, AwaitAndLockWhenSeeTheValueTheyWaitedFor) {
  absl::Mutex mu;
  int stage = 0;
  std::vector<int> log;  // appended under the mutex by both threads in turn
  std::thread other([&] {
    mu.LockWhen(absl::Condition(+[](int* s) { return *s == 1; }, &stage));
    log.push_back(1);
    stage = 2;
    mu.Unlock();
  });
  {
    absl::MutexLock lock(&mu);
    log.push_back(0);
    stage = 1;
    mu.Await(absl::Condition(+[](int* s) { return *s == 2; }, &stage));
    log.push_back(2);
  }
  other.join();
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2}));
}

TEST(AbslSyncAnnotationsTest, CondVarWaitHandsOver) {
  absl::Mutex mu;
  absl::CondVar cv;
  std::vector<int> queue;
  int received = 0;
  std::thread consumer([&] {
    absl::MutexLock lock(&mu);
    while (received < kRounds) {
      while (queue.empty()) cv.Wait(&mu);
      received += static_cast<int>(queue.size());
      queue.clear();
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    absl::MutexLock lock(&mu);
    queue.push_back(i);
    cv.Signal();
  }
  consumer.join();
  EXPECT_EQ(received, kRounds);
}

TEST(AbslSyncAnnotationsTest, NotificationPublishesWhatCameBefore) {
  for (int i = 0; i < kRounds; ++i) {
    absl::Notification done;
    std::vector<int> result;  // written before Notify, read after the wait
    std::thread worker([&] {
      result.assign(16, i);
      done.Notify();
    });
    if (i % 2 == 0) {
      done.WaitForNotification();
    } else {
      ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    }
    EXPECT_EQ(result, std::vector<int>(16, i));
    worker.join();
  }
}

}  // namespace
