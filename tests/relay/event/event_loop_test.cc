// SPDX-License-Identifier: Apache-2.0
#include "relay/event/event_loop.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <latch>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/relay/event/fd_count.h"
#include "tests/testing/manual_clock.h"

namespace shadowrelay::relay {
namespace {

using namespace std::chrono_literals;
using testing::countOpenFds;

// An owned fd pair (socketpair or pipe) closed on destruction.
struct FdPair {
  FdPair(int first, int second) : a(first), b(second) {}
  FdPair(FdPair&& other) noexcept : a(std::exchange(other.a, -1)), b(std::exchange(other.b, -1)) {}
  FdPair& operator=(FdPair&& other) noexcept {
    std::swap(a, other.a);
    std::swap(b, other.b);
    return *this;
  }
  ~FdPair() {
    closeA();
    closeB();
  }
  void closeA() {
    if (a >= 0) {
      ::close(a);
      a = -1;
    }
  }
  void closeB() {
    if (b >= 0) {
      ::close(b);
      b = -1;
    }
  }
  int a = -1;
  int b = -1;
};

FdPair makeSocketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  return FdPair{fds[0], fds[1]};
}

FdPair makePipe() {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  return FdPair{fds[0], fds[1]};  // a = read end, b = write end
}

void writeAll(int fd, const std::string& data) {
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
}

std::string readSome(int fd) {
  char buf[4096];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Stops the loop and fails the test if it is still running after `limit` (a hang guard, never
// a performance assertion).
class Watchdog {
 public:
  Watchdog(EventLoop& loop, std::chrono::seconds limit)
      : timer_(loop, [&loop] {
          ADD_FAILURE() << "watchdog fired";
          loop.stop();
        }) {
    timer_.armAfter(limit);
  }

 private:
  Timer timer_;
};

// ---------------------------------------------------------------------------------------------
// Readiness on sockets and pipes

TEST(EventLoopTest, SocketPairReadableAndWritable) {
  EventLoop loop;
  FdPair pair = makeSocketPair();
  std::vector<uint32_t> a_events;
  std::vector<uint32_t> b_events;
  IoWatcher a(loop, pair.a, kReadable, [&](uint32_t ev) {
    a_events.push_back(ev);
    EXPECT_EQ(readSome(pair.a), "hello");
  });
  IoWatcher b(loop, pair.b, kWritable, [&](uint32_t ev) { b_events.push_back(ev); });
  EXPECT_EQ(loop.watcherCount(), 2u);
  EXPECT_EQ(a.fd(), pair.a);
  EXPECT_EQ(a.interest(), uint32_t{kReadable});

  loop.runOnce(1000ms);
  EXPECT_TRUE(a_events.empty());
  ASSERT_EQ(b_events.size(), 1u);
  EXPECT_EQ(b_events[0], uint32_t{kWritable});

  b.enableWrite(false);
  writeAll(pair.b, "hello");
  loop.runOnce(1000ms);
  ASSERT_EQ(a_events.size(), 1u);
  EXPECT_EQ(a_events[0], uint32_t{kReadable});
  EXPECT_EQ(b_events.size(), 1u);
}

TEST(EventLoopTest, LevelTriggeredReportsAgainUntilDrained) {
  EventLoop loop;
  FdPair pair = makeSocketPair();
  int calls = 0;
  IoWatcher a(loop, pair.a, kReadable, [&](uint32_t) { ++calls; });
  writeAll(pair.b, "x");
  loop.runOnce(1000ms);
  loop.runOnce(0ms);
  loop.runOnce(0ms);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(readSome(pair.a), "x");
  loop.runOnce(0ms);
  EXPECT_EQ(calls, 3);
}

TEST(EventLoopTest, PipeReadableThenHangupWhenWriterCloses) {
  EventLoop loop;
  FdPair pipe = makePipe();
  std::vector<uint32_t> events;
  std::string got;
  IoWatcher reader(loop, pipe.a, kReadable, [&](uint32_t ev) {
    events.push_back(ev);
    got += readSome(pipe.a);
  });
  writeAll(pipe.b, "abc");
  loop.runOnce(1000ms);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], uint32_t{kReadable});
  EXPECT_EQ(got, "abc");

  pipe.closeB();
  loop.runOnce(1000ms);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[1] & kClosed);
}

TEST(EventLoopTest, PipeWriterGetsErrorWhenReaderCloses) {
  EventLoop loop;
  FdPair pipe = makePipe();
  std::vector<uint32_t> events;
  {
    IoWatcher writer(loop, pipe.b, kWritable, [&](uint32_t ev) { events.push_back(ev); });
    loop.runOnce(1000ms);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0], uint32_t{kWritable});
    pipe.closeA();
    loop.runOnce(1000ms);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_TRUE(events[1] & kClosed);
  }
  EXPECT_EQ(loop.watcherCount(), 0u);
}

TEST(EventLoopTest, LoopbackTcpAcceptConnectEchoAndEof) {
  EventLoop loop;
  Watchdog watchdog(loop, 10s);

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  const int rc = ::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ASSERT_TRUE(rc == 0 || errno == EINPROGRESS);

  int server = -1;
  std::unique_ptr<IoWatcher> server_watcher;
  std::string echoed;
  bool server_saw_eof = false;

  IoWatcher accept_watcher(loop, listener, kReadable, [&](uint32_t) {
    server = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ASSERT_GE(server, 0);
    server_watcher = std::make_unique<IoWatcher>(loop, server, kReadable, [&](uint32_t ev) {
      char buf[256];
      const ssize_t n = ::read(server, buf, sizeof(buf));
      if (n > 0) {
        ASSERT_EQ(::write(server, buf, static_cast<size_t>(n)), n);
      } else if (n == 0 || (ev & kClosed)) {
        server_saw_eof = true;
        server_watcher.reset();  // Destroys the running watcher from its own callback.
        loop.stop();
      }
    });
  });

  std::unique_ptr<IoWatcher> client_watcher;
  client_watcher = std::make_unique<IoWatcher>(loop, client, kWritable, [&](uint32_t ev) {
    if (ev & kWritable) {
      int err = -1;
      socklen_t err_len = sizeof(err);
      ASSERT_EQ(::getsockopt(client, SOL_SOCKET, SO_ERROR, &err, &err_len), 0);
      ASSERT_EQ(err, 0);
      writeAll(client, "ping");
      client_watcher->setInterest(kReadable);
      return;
    }
    echoed += readSome(client);
    if (echoed == "ping") {
      ::shutdown(client, SHUT_WR);
    }
  });

  loop.run();
  EXPECT_EQ(echoed, "ping");
  EXPECT_TRUE(server_saw_eof);
  client_watcher.reset();
  ::close(client);
  ::close(server);
  ::close(listener);
}

TEST(EventLoopTest, RegularFileCannotBeWatched) {
  EventLoop loop;
  const int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  {
    IoWatcher w(loop, fd, kReadable, [](uint32_t) {});
    EXPECT_EQ(w.lastError(), EPERM);
  }
  ::close(fd);
}

// ---------------------------------------------------------------------------------------------
// Interest changes and removal inside an epoll batch

TEST(EventLoopTest, InterestChangesCostOneEpollCtlAndZeroInterestLeavesEpoll) {
  EventLoop loop;
  FdPair pair = makeSocketPair();
  int calls = 0;
  IoWatcher a(loop, pair.a, 0, [&](uint32_t) { ++calls; });
  EXPECT_EQ(loop.stats().epoll_ctl_calls, 0u);
  writeAll(pair.b, "x");
  loop.runOnce(0ms);
  EXPECT_EQ(calls, 0);

  a.enableRead(true);  // ADD
  a.enableRead(true);  // no change: no syscall
  EXPECT_EQ(loop.stats().epoll_ctl_calls, 1u);
  loop.runOnce(1000ms);
  EXPECT_EQ(calls, 1);

  a.enableRead(false);  // DEL
  loop.runOnce(0ms);
  EXPECT_EQ(calls, 1);
  a.setInterest(kReadable | kWritable);  // ADD
  a.enableWrite(false);                  // MOD
  EXPECT_EQ(a.interest(), uint32_t{kReadable});
  EXPECT_EQ(loop.stats().epoll_ctl_calls, 4u);
  loop.runOnce(1000ms);
  EXPECT_EQ(calls, 2);
}

TEST(EventLoopTest, WatcherDestroyedEarlierInBatchGetsNoCallbackEvenIfSlotAndFdReused) {
  EventLoop loop;
  FdPair p1 = makeSocketPair();
  FdPair p2 = makeSocketPair();
  std::unique_ptr<IoWatcher> w1;
  std::unique_ptr<IoWatcher> w2;
  std::unique_ptr<IoWatcher> replacement;
  std::optional<FdPair> replacement_pair;
  int calls1 = 0;
  int calls2 = 0;
  int replacement_calls = 0;

  // Whichever callback runs first closes the other session: destroys its watcher, closes its fd,
  // and opens a new one that reuses both the fd number and the watcher slot.
  auto closeOther = [&](std::unique_ptr<IoWatcher>& other, FdPair& other_pair) {
    if (other == nullptr) {
      return;
    }
    const int old_fd = other_pair.a;
    other.reset();
    other_pair.closeA();
    replacement_pair.emplace(makeSocketPair());
    EXPECT_EQ(replacement_pair->a, old_fd);  // Lowest free fd number.
    writeAll(replacement_pair->b, "new");
    replacement = std::make_unique<IoWatcher>(loop, replacement_pair->a, kReadable,
                                              [&](uint32_t) { ++replacement_calls; });
  };
  w1 = std::make_unique<IoWatcher>(loop, p1.a, kReadable, [&](uint32_t) {
    ++calls1;
    closeOther(w2, p2);
  });
  w2 = std::make_unique<IoWatcher>(loop, p2.a, kReadable, [&](uint32_t) {
    ++calls2;
    closeOther(w1, p1);
  });
  writeAll(p1.b, "1");
  writeAll(p2.b, "2");

  loop.runOnce(1000ms);
  EXPECT_EQ(loop.stats().iterations, 1u);
  EXPECT_EQ(calls1 + calls2, 1);
  EXPECT_EQ(replacement_calls, 0);
  EXPECT_EQ(loop.stats().stale_events, 1u);

  loop.runOnce(1000ms);
  EXPECT_EQ(replacement_calls, 1);
  w1.reset();
  w2.reset();
  replacement.reset();
  EXPECT_EQ(loop.watcherCount(), 0u);
}

TEST(EventLoopTest, InterestDroppedEarlierInBatchMasksTheEvent) {
  EventLoop loop;
  FdPair p1 = makeSocketPair();
  FdPair p2 = makeSocketPair();
  std::unique_ptr<IoWatcher> w1;
  std::unique_ptr<IoWatcher> w2;
  int calls = 0;
  w1 = std::make_unique<IoWatcher>(loop, p1.a, kReadable, [&](uint32_t) {
    ++calls;
    w2->enableRead(false);
  });
  w2 = std::make_unique<IoWatcher>(loop, p2.a, kReadable, [&](uint32_t) {
    ++calls;
    w1->enableRead(false);
  });
  writeAll(p1.b, "1");
  writeAll(p2.b, "2");
  loop.runOnce(1000ms);
  EXPECT_EQ(calls, 1);
}

TEST(EventLoopTest, WatcherMayDestroyItselfAndItsCaptures) {
  EventLoop loop;
  FdPair pair = makeSocketPair();
  auto token = std::make_shared<int>(7);
  std::unique_ptr<IoWatcher> w;
  int seen = 0;
  w = std::make_unique<IoWatcher>(loop, pair.a, kWritable, [&, token](uint32_t) {
    w.reset();
    seen = *token;  // Captures are still alive: the callback runs from the dispatcher's stack.
  });
  loop.runOnce(1000ms);
  EXPECT_EQ(seen, 7);
  EXPECT_EQ(w, nullptr);
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(loop.watcherCount(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Timers

TEST(TimerTest, FireInDeadlineOrderThenArmOrder) {
  EventLoop loop;
  Watchdog watchdog(loop, 10s);
  std::vector<int> order;
  std::vector<std::unique_ptr<Timer>> timers;
  const TimePoint base = loop.now();
  // (id, offset): ids 3 and 4 share a deadline and must keep their arm order.
  const std::vector<std::pair<int, std::chrono::milliseconds>> plan = {
      {5, 25ms}, {1, 1ms}, {3, 10ms}, {4, 10ms}, {2, 5ms}, {6, 30ms}};
  for (const auto& [id, offset] : plan) {
    timers.push_back(std::make_unique<Timer>(loop, [&order, &loop, id = id] {
      order.push_back(id);
      if (order.size() == 6) {
        loop.stop();
      }
    }));
    timers.back()->armAt(base + offset);
  }
  EXPECT_EQ(loop.armedTimerCount(), 7u);  // And the watchdog.
  loop.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(loop.armedTimerCount(), 1u);  // The watchdog.
  EXPECT_GE(loop.now(), base + 30ms);
}

TEST(TimerTest, CancelRearmAndPeriodicRearmFromCallback) {
  EventLoop loop;
  Watchdog watchdog(loop, 10s);
  int cancelled_fired = 0;
  int moved_fired = 0;
  int periodic_fired = 0;
  Timer cancelled(loop, [&] { ++cancelled_fired; });
  Timer moved(loop, [&] { ++moved_fired; });
  std::unique_ptr<Timer> periodic;
  periodic = std::make_unique<Timer>(loop, [&] {
    if (++periodic_fired < 5) {
      periodic->armAfter(1ms);
    } else {
      loop.stop();
    }
  });

  cancelled.armAfter(1ms);
  EXPECT_TRUE(cancelled.armed());
  cancelled.cancel();
  EXPECT_FALSE(cancelled.armed());
  cancelled.cancel();  // Idempotent.

  moved.armAfter(1ms);
  moved.armAfter(3ms);  // Re-arm replaces the deadline.
  EXPECT_EQ(moved.deadline(), loop.now() + 3ms);
  periodic->armAfter(1ms);

  loop.run();
  EXPECT_EQ(cancelled_fired, 0);
  EXPECT_EQ(moved_fired, 1);
  EXPECT_EQ(periodic_fired, 5);
  EXPECT_FALSE(moved.armed());
  EXPECT_FALSE(periodic->armed());
}

TEST(TimerTest, CallbackMayDestroyItselfAndOtherDueTimers) {
  EventLoop loop;
  auto token = std::make_shared<int>(1);
  std::vector<int> fired;
  std::unique_ptr<Timer> t1;
  std::unique_ptr<Timer> t2;
  std::unique_ptr<Timer> t3;
  t1 = std::make_unique<Timer>(loop, [&, token] {
    fired.push_back(1);
    t1.reset();  // Itself...
    t2.reset();  // ...and a timer due in the same pass.
    fired.push_back(*token);
  });
  t2 = std::make_unique<Timer>(loop, [&] { fired.push_back(2); });
  t3 = std::make_unique<Timer>(loop, [&] { fired.push_back(3); });
  const TimePoint past = loop.now() - 1ms;
  t1->armAt(past);
  t2->armAt(past);
  t3->armAt(past);
  loop.runOnce(0ms);
  EXPECT_EQ(fired, (std::vector<int>{1, 1, 3}));
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(loop.armedTimerCount(), 0u);
}

TEST(TimerTest, ZeroDelayRearmFiresOncePerIterationAndDoesNotStarveIo) {
  EventLoop loop;
  FdPair pair = makeSocketPair();
  int fired = 0;
  int io = 0;
  std::unique_ptr<Timer> t;
  t = std::make_unique<Timer>(loop, [&] {
    ++fired;
    t->armAfter(0ns);
  });
  IoWatcher w(loop, pair.a, kWritable, [&](uint32_t) { ++io; });
  t->armAfter(0ns);
  for (int i = 0; i < 5; ++i) {
    loop.runOnce(1000ms);
  }
  EXPECT_EQ(fired, 5);
  EXPECT_EQ(io, 5);
}

TEST(TimerTest, HundredThousandTimersHaveLogarithmicCost) {
  constexpr size_t kTimers = 100'000;
  const double log_n = std::log2(static_cast<double>(kTimers));
  // A binary heap moves at most floor(log2(size)) + 1 entries per operation.
  const auto bound = [&](size_t ops) { return static_cast<uint64_t>(ops * (log_n + 1)); };

  EventLoop loop;
  std::vector<std::unique_ptr<Timer>> timers;
  timers.reserve(kTimers);
  std::vector<size_t> fired;
  fired.reserve(kTimers);
  std::vector<TimePoint> deadlines(kTimers);
  for (size_t i = 0; i < kTimers; ++i) {
    timers.push_back(std::make_unique<Timer>(loop, [&fired, i] { fired.push_back(i); }));
  }
  const TimePoint base = loop.now();

  // 1. Worst case for inserts: strictly decreasing deadlines, each sifts to the root.
  uint64_t before = loop.timerHeapMoves();
  for (size_t i = 0; i < kTimers; ++i) {
    timers[i]->armAt(base + std::chrono::hours(1) - std::chrono::microseconds(i));
  }
  const uint64_t insert_moves = loop.timerHeapMoves() - before;
  EXPECT_LE(insert_moves, bound(kTimers));
  EXPECT_GE(insert_moves, kTimers * 10);  // The probe really counts the worst case.
  EXPECT_EQ(loop.armedTimerCount(), kTimers);

  // 2. Re-arm every timer to a random later deadline (an idle timer pushed back on activity).
  std::mt19937_64 rng(42);
  before = loop.timerHeapMoves();
  for (size_t i = 0; i < kTimers; ++i) {
    timers[i]->armAfter(std::chrono::hours(2) + std::chrono::microseconds(rng() % 1'000'000));
  }
  EXPECT_LE(loop.timerHeapMoves() - before, bound(kTimers));

  // 3. Cancel half in random order.
  std::vector<size_t> order(kTimers);
  for (size_t i = 0; i < kTimers; ++i) {
    order[i] = i;
  }
  std::shuffle(order.begin(), order.end(), rng);
  before = loop.timerHeapMoves();
  for (size_t k = 0; k < kTimers / 2; ++k) {
    timers[order[k]]->cancel();
  }
  EXPECT_LE(loop.timerHeapMoves() - before, bound(kTimers / 2));
  EXPECT_EQ(loop.armedTimerCount(), kTimers / 2);

  // 4. Bring the rest due within 20 ms and fire them all; they must come out in deadline order.
  before = loop.timerHeapMoves();
  for (size_t k = kTimers / 2; k < kTimers; ++k) {
    const size_t i = order[k];
    deadlines[i] = base + std::chrono::microseconds(rng() % 20'000);
    timers[i]->armAt(deadlines[i]);
  }
  Timer done(loop, [&loop] { loop.stop(); });
  done.armAt(base + 25ms);
  loop.run();
  ASSERT_EQ(fired.size(), kTimers / 2);
  for (size_t k = 1; k < fired.size(); ++k) {
    ASSERT_LE(deadlines[fired[k - 1]], deadlines[fired[k]]) << "at " << k;
  }
  // Re-arm plus pop: two operations per timer.
  EXPECT_LE(loop.timerHeapMoves() - before, bound(kTimers));
  EXPECT_EQ(loop.stats().timers_fired, kTimers / 2 + 1);
  EXPECT_EQ(loop.armedTimerCount(), 0u);

  timers.clear();
}

// With a manual time source the loop's time is that clock's: now() moves only when the test
// moves it, timers fire in deadline order once it has passed theirs (not a tick before), and an
// iteration with a timer due does not wait in epoll_wait.
TEST(TimerTest, AManualTimeSourceDrivesNowAndTimers) {
  shadowrelay::testing::ManualClock clock;
  EventLoopOptions options;
  options.time_source = &clock;
  EventLoop loop(options);
  const TimePoint start = loop.now();
  EXPECT_EQ(start, clock.now());
  EXPECT_EQ(loop.readClock(), clock.now());
  std::vector<int> order;
  Timer later(loop, [&] { order.push_back(2); });
  Timer sooner(loop, [&] { order.push_back(1); });
  later.armAfter(2s);
  sooner.armAfter(1s);
  loop.runOnce(0ms);
  EXPECT_EQ(loop.now(), start);
  EXPECT_TRUE(order.empty());
  clock.advance(1s);
  EXPECT_EQ(loop.now(), start) << "now() is cached until the next iteration";
  loop.runOnce(24h);  // `sooner` is due: returns at once (else the test's timeout ends it)
  EXPECT_EQ(loop.now(), start + 1s);
  EXPECT_EQ(order, std::vector<int>{1});
  clock.advance(1s - 1ns);
  loop.runOnce(0ms);
  EXPECT_EQ(order, std::vector<int>{1}) << "fired 1 ns before its deadline";
  clock.advance(1ns);
  loop.runOnce(0ms);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(loop.stats().timers_fired, 2u);
  EXPECT_EQ(loop.armedTimerCount(), 0u);
}

// ---------------------------------------------------------------------------------------------
// post(), defer(), deferred deletion, stop

TEST(EventLoopTest, PostFromManyThreadsRunsEveryTaskOnceInPerThreadOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  EventLoop loop;
  Watchdog watchdog(loop, 30s);
  std::vector<std::vector<int>> seen(kThreads);
  int total = 0;
  std::latch go(kThreads + 1);
  std::vector<std::thread> producers;
  for (int p = 0; p < kThreads; ++p) {
    producers.emplace_back([&, p] {
      go.arrive_and_wait();
      for (int seq = 0; seq < kPerThread; ++seq) {
        auto task = [&, p, seq] {
          EXPECT_TRUE(loop.isInLoopThread());
          seen[p].push_back(seq);
          if (++total == kThreads * kPerThread) {
            loop.stop();
          }
        };
        if (seq % 2 == 0) {
          loop.post(std::move(task));
        } else {
          loop.runInLoop(std::move(task));  // Not the loop thread: posts.
        }
      }
    });
  }
  go.arrive_and_wait();
  loop.run();
  for (auto& t : producers) {
    t.join();
  }
  EXPECT_EQ(total, kThreads * kPerThread);
  for (int p = 0; p < kThreads; ++p) {
    ASSERT_EQ(seen[p].size(), static_cast<size_t>(kPerThread));
    for (int seq = 0; seq < kPerThread; ++seq) {
      ASSERT_EQ(seen[p][seq], seq);
    }
  }
  EXPECT_EQ(loop.stats().posted_tasks_run, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(loop.pendingPostedTasks(), 0u);
}

TEST(EventLoopTest, StopFromAnotherThreadWakesAnIdleLoop) {
  EventLoop loop;
  std::atomic<bool> running{false};
  loop.post([&] { running = true; });
  std::thread runner([&] { loop.run(); });
  while (!running) {
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(20ms);  // Let it block in epoll_wait with no timeout.
  EXPECT_FALSE(loop.isInLoopThread());
  loop.stop();
  runner.join();  // Hangs (test timeout) if stop() did not wake the loop.
  EXPECT_GE(loop.stats().wakeups, 1u);
}

TEST(EventLoopTest, StopBeforeRunReturnsAtOnce) {
  EventLoop loop;
  loop.stop();
  loop.run();
  EXPECT_EQ(loop.stats().iterations, 0u);
}

TEST(EventLoopTest, StopFinishesTheIterationAndLeavesLaterWorkQueued) {
  EventLoop loop;
  std::vector<int> ran;
  loop.post([&] {
    ran.push_back(1);
    loop.stop();
    loop.post([&] { ran.push_back(3); });  // Next iteration: not in this run().
  });
  loop.post([&] { ran.push_back(2); });  // Same batch as the stop: runs.
  loop.run();
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  EXPECT_EQ(loop.pendingPostedTasks(), 1u);
  loop.post([&] { loop.stop(); });
  loop.run();  // A later run() picks the queue up.
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3}));
}

struct Tracked : DeferredDeletable {
  explicit Tracked(int* destroyed) : destroyed_(destroyed) {}
  ~Tracked() override { ++*destroyed_; }
  int* destroyed_;
};

TEST(EventLoopTest, DestroyingAStoppedLoopFreesAllPendingWork) {
  const size_t fds_before = countOpenFds();
  auto token = std::make_shared<int>(0);
  int deleted = 0;
  int ran = 0;
  {
    FdPair pair = makeSocketPair();
    EventLoop loop;
    // A session-like object still registered and with an armed timer, owned by a pending task.
    struct Session {
      Session(EventLoop& loop, int fd)
          : watcher(loop, fd, kReadable, [](uint32_t) {}), idle(loop, [] {}) {
        idle.armAfter(1h);
      }
      IoWatcher watcher;
      Timer idle;
    };
    auto session = std::make_shared<Session>(loop, pair.a);
    loop.post([&, token, session] {
      ++ran;
      loop.stop();
      loop.post([&ran, token, session] { ++ran; });
      loop.defer([&ran, token] { ++ran; });  // Runs: same iteration.
      loop.deferredDelete(std::make_unique<Tracked>(&deleted));
    });
    session.reset();
    loop.run();
    EXPECT_EQ(ran, 2);
    EXPECT_EQ(deleted, 1);
    EXPECT_EQ(loop.watcherCount(), 1u);
    EXPECT_EQ(loop.armedTimerCount(), 1u);
    // Pending at destruction: a posted task owning a session, a deferred deletion.
    loop.deferredDelete(std::make_unique<Tracked>(&deleted));
    EXPECT_EQ(token.use_count(), 2);
  }
  EXPECT_EQ(ran, 2);  // Destroyed, not run.
  EXPECT_EQ(deleted, 2);
  EXPECT_EQ(token.use_count(), 1);
  EXPECT_EQ(countOpenFds(), fds_before);
}

TEST(EventLoopTest, DeferredDeleteFreesAfterTheBatchInFifoOrder) {
  EventLoop loop;
  FdPair p1 = makeSocketPair();
  FdPair p2 = makeSocketPair();
  std::vector<int> log;
  struct Logged : DeferredDeletable {
    Logged(EventLoop& loop, std::vector<int>& log, int id, bool chain)
        : loop_(loop), log_(log), id_(id), chain_(chain) {}
    ~Logged() override {
      log_.push_back(id_);
      if (chain_) {  // Freed in the same iteration too.
        loop_.deferredDelete(std::make_unique<Logged>(loop_, log_, id_ * 10, false));
      }
    }
    EventLoop& loop_;
    std::vector<int>& log_;
    int id_;
    bool chain_;
  };
  int callbacks = 0;
  auto onEvent = [&](uint32_t) {
    if (++callbacks == 1) {
      loop.deferredDelete(std::make_unique<Logged>(loop, log, 1, true));
      loop.deferredDelete(std::make_unique<Logged>(loop, log, 2, false));
    } else {
      EXPECT_TRUE(log.empty());  // Still alive during the rest of the batch.
    }
  };
  IoWatcher w1(loop, p1.a, kWritable, onEvent);
  IoWatcher w2(loop, p2.a, kWritable, onEvent);
  loop.runOnce(1000ms);
  EXPECT_EQ(callbacks, 2);
  EXPECT_EQ(log, (std::vector<int>{1, 2, 10}));
  EXPECT_EQ(loop.stats().deferred_deletes, 3u);
}

TEST(EventLoopTest, DeferRunsAfterCallbacksAndTimersOfTheIteration) {
  EventLoop loop;
  FdPair pair = makeSocketPair();
  std::vector<std::string> log;
  Timer t(loop, [&] { log.push_back("timer"); });
  t.armAt(loop.now());
  IoWatcher w(loop, pair.a, kWritable, [&](uint32_t) {
    log.push_back("io");
    loop.defer([&] {
      log.push_back("deferred");
      loop.defer([&] { log.push_back("next"); });
    });
    w.enableWrite(false);
  });
  loop.runOnce(1000ms);
  EXPECT_EQ(log, (std::vector<std::string>{"io", "timer", "deferred"}));
  loop.runOnce(1000ms);  // Pending deferred work: does not block.
  EXPECT_EQ(log.back(), "next");
}

TEST(EventLoopTest, RunInLoopRunsInlineOnTheLoopThread) {
  EventLoop loop;
  EXPECT_TRUE(loop.isInLoopThread());
  bool ran = false;
  loop.runInLoop([&] { ran = true; });
  EXPECT_TRUE(ran);
  bool other_thread_sees_loop = true;
  std::thread([&] { other_thread_sees_loop = loop.isInLoopThread(); }).join();
  EXPECT_FALSE(other_thread_sees_loop);
}

TEST(EventLoopTest, OpensTwoFdsAndLeaksNone) {
  const size_t before = countOpenFds();
  for (int round = 0; round < 2; ++round) {
    EventLoop loop;
    EXPECT_EQ(countOpenFds(), before + 2);  // epoll + eventfd
    FdPair pair = makeSocketPair();
    IoWatcher w(loop, pair.a, kReadable | kWritable, [](uint32_t) {});
    Timer t(loop, [] {});
    t.armAfter(1ms);
    loop.post([&loop] { loop.stop(); });
    loop.run();
  }
  EXPECT_EQ(countOpenFds(), before);
}

TEST(EventLoopTest, EventBufferGrowsWhenABatchFillsIt) {
  EventLoop loop(EventLoopOptions{.initial_events = 2});
  std::vector<FdPair> pairs;
  std::vector<std::unique_ptr<IoWatcher>> watchers;
  int calls = 0;
  for (int i = 0; i < 8; ++i) {
    pairs.push_back(makeSocketPair());
  }
  for (auto& p : pairs) {
    watchers.push_back(
        std::make_unique<IoWatcher>(loop, p.a, kWritable, [&](uint32_t) { ++calls; }));
  }
  for (int i = 0; i < 4; ++i) {
    loop.runOnce(1000ms);  // Batches of 2, 4, 8 events.
  }
  EXPECT_EQ(calls, 2 + 4 + 8 + 8);
  watchers.clear();
}

}  // namespace
}  // namespace shadowrelay::relay
