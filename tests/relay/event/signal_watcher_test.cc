// SPDX-License-Identifier: Apache-2.0
#include "relay/event/signal_watcher.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "relay/event/worker_pool.h"
#include "tests/relay/event/fd_count.h"

namespace shadowrelay::relay {
namespace {

using namespace std::chrono_literals;
using testing::countOpenFds;

// Every test blocks the signals in the main thread first; gtest starts no threads of its own, so
// threads created afterwards inherit the mask, as in main() of the daemon.
class SignalWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override { SignalWatcher::blockInThisThread(SignalWatcher::stopAndReloadSignals()); }
};

TEST_F(SignalWatcherTest, SighupGoesToTheReloadHookOnly) {
  EventLoop loop;
  int reloads = 0;
  int stops = 0;
  auto watcher = SignalWatcher::stopAndReload(
      loop, [&](int) { ++stops; }, [&] { ++reloads; });
  ASSERT_EQ(watcher->error(), 0);
  ASSERT_EQ(::raise(SIGHUP), 0);
  loop.runOnce(5000ms);
  EXPECT_EQ(reloads, 1);
  EXPECT_EQ(stops, 0);
}

TEST_F(SignalWatcherTest, SigtermAndSigintStartTheGracefulStop) {
  EventLoop loop;
  std::vector<int> stops;
  auto watcher = SignalWatcher::stopAndReload(
      loop,
      [&](int signo) {
        stops.push_back(signo);
        loop.stop();
      },
      nullptr);
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);  // Process-directed, like `kill <pid>`.
  loop.run();
  ASSERT_EQ(::kill(::getpid(), SIGINT), 0);
  loop.run();
  EXPECT_EQ(stops, (std::vector<int>{SIGTERM, SIGINT}));
}

TEST_F(SignalWatcherTest, ProcessSignalReachesAWatcherOnAWorkerLoop) {
  WorkerPool pool(2);
  pool.start();
  std::unique_ptr<SignalWatcher> watcher;
  absl::Notification reloaded;
  std::atomic<bool> on_worker{false};
  pool.runOnEachAndWait([&](EventLoop& loop, size_t i) {
    if (i == 1) {
      watcher = SignalWatcher::stopAndReload(loop, nullptr, [&] {
        on_worker = pool.loop(1).isInLoopThread();
        reloaded.Notify();
      });
    }
  });
  ASSERT_EQ(::kill(::getpid(), SIGHUP), 0);
  ASSERT_TRUE(reloaded.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(on_worker);
  pool.runOnEachAndWait([&](EventLoop&, size_t i) {
    if (i == 1) {
      watcher.reset();
    }
  });
}

TEST_F(SignalWatcherTest, CallbackMayDestroyTheWatcher) {
  EventLoop loop;
  std::unique_ptr<SignalWatcher> watcher;
  std::vector<int> seen;
  watcher =
      std::make_unique<SignalWatcher>(loop, std::vector<int>{SIGHUP, SIGTERM}, [&](int signo) {
        seen.push_back(signo);
        watcher.reset();
      });
  ASSERT_EQ(::raise(SIGHUP), 0);
  ASSERT_EQ(::raise(SIGTERM), 0);
  loop.runOnce(5000ms);
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_EQ(watcher, nullptr);
  // The other signal is still pending; a new watcher picks it up.
  SignalWatcher again(loop, {SIGHUP, SIGTERM}, [&](int signo) { seen.push_back(signo); });
  loop.runOnce(5000ms);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_NE(seen[0], seen[1]);
}

TEST_F(SignalWatcherTest, NoFdLeak) {
  const size_t before = countOpenFds();
  {
    EventLoop loop;
    SignalWatcher watcher(loop, {SIGHUP}, [](int) {});
    EXPECT_EQ(countOpenFds(), before + 3);
  }
  EXPECT_EQ(countOpenFds(), before);
}

}  // namespace
}  // namespace shadowrelay::relay
