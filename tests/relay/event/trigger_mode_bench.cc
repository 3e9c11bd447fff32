// SPDX-License-Identifier: Apache-2.0
// Level- vs edge-triggered epoll on the relay's two hot patterns, plus timer-heap costs at 100k
// timers. Results and the decision: docs/REACTOR.md.
//
//   bazel run //tests/relay/event:trigger_mode_bench -- --benchmark_repetitions=5
//
// Each pattern is written the way a session would be written for that mode:
//  - Level (muduo): one read per readiness report; on a short write, drop the source's kReadable
//    and add the sink's kWritable (epoll_ctl), and undo both once the sink drains.
//  - Edge (Envoy FileEventImpl): kReadable | kWritable registered once and never changed;
//    read/write until EAGAIN and latch "readable"/"writable" in user space.
// syscalls/op counts epoll_wait + epoll_ctl + every read/write, EAGAIN included.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "relay/event/event_loop.h"

namespace shadowrelay::relay {
namespace {

constexpr size_t kChunk = 16 * 1024;  // About one SIP004 frame.

uint64_t g_reads = 0;
uint64_t g_writes = 0;
uint64_t g_eagain = 0;

ssize_t countedRead(int fd, void* buf, size_t n) {
  ++g_reads;
  const ssize_t r = ::read(fd, buf, n);
  if (r < 0 && errno == EAGAIN) {
    ++g_eagain;
  }
  return r;
}

ssize_t countedWrite(int fd, const void* buf, size_t n) {
  ++g_writes;
  const ssize_t r = ::write(fd, buf, n);
  if (r < 0 && errno == EAGAIN) {
    ++g_eagain;
  }
  return r;
}

// A connected non-blocking pair: AF_UNIX socketpair or loopback TCP.
void makePair(bool tcp, int fds[2]) {
  if (!tcp) {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
      std::abort();
    }
    return;
  }
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener, 1) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::abort();
  }
  fds[0] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fds[0], reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::abort();
  }
  fds[1] = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  ::close(listener);
  const int one = 1;
  for (int i = 0; i < 2; ++i) {
    ::setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  if (::fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) {
    std::abort();
  }
}

struct Counters {
  uint64_t iterations;
  uint64_t ctl;
  uint64_t reads;
  uint64_t writes;
  uint64_t callbacks;
  uint64_t eagain;
  static Counters take(const EventLoop& loop) {
    return {loop.stats().iterations,
            loop.stats().epoll_ctl_calls,
            g_reads,
            g_writes,
            loop.stats().io_callbacks,
            g_eagain};
  }
};

void report(benchmark::State& state, const EventLoop& loop, const Counters& start, double ops) {
  const Counters end = Counters::take(loop);
  const double waits = static_cast<double>(end.iterations - start.iterations);
  const double ctl = static_cast<double>(end.ctl - start.ctl);
  const double rw = static_cast<double>(end.reads - start.reads + end.writes - start.writes);
  state.counters["syscalls/op"] = (waits + ctl + rw) / ops;
  state.counters["epoll_wait/op"] = waits / ops;
  state.counters["epoll_ctl/op"] = ctl / ops;
  state.counters["rw/op"] = rw / ops;
  state.counters["callbacks/op"] = static_cast<double>(end.callbacks - start.callbacks) / ops;
  state.counters["eagain/op"] = static_cast<double>(end.eagain - start.eagain) / ops;
}

// ---------------------------------------------------------------------------------------------
// Bulk relay with backpressure: producer -> [src pair] -> relay -> [dst pair] -> consumer.
// One op = one 16 KiB chunk delivered to the consumer.

struct BulkSession {
  int src[2];  // producer writes src[0], relay reads src[1]
  int dst[2];  // relay writes dst[0], consumer reads dst[1]
  std::unique_ptr<IoWatcher> producer, relay_in, relay_out, consumer;
  char buf[kChunk];
  size_t pending = 0;
  size_t offset = 0;
  bool src_readable = false;
  bool dst_writable = false;
};

class BulkBench {
 public:
  BulkBench(TriggerMode mode, int sessions, bool tcp, bool slow_sink)
      : loop_(EventLoopOptions{.trigger_mode = mode}),
        edge_(mode == TriggerMode::Edge),
        slow_sink_(slow_sink),
        drain_(loop_, [this] { drainSlowly(); }) {
    static char payload[kChunk];
    payload_ = payload;
    for (int i = 0; i < sessions; ++i) {
      sessions_.push_back(std::make_unique<BulkSession>());
      BulkSession& s = *sessions_.back();
      makePair(tcp, s.src);
      makePair(tcp, s.dst);
      if (slow_sink) {
        // Small buffers so the steady state (sink full, relay stalling) comes quickly.
        const int size = 32 * 1024;
        ::setsockopt(s.dst[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        ::setsockopt(s.dst[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
      }
      s.producer =
          std::make_unique<IoWatcher>(loop_, s.src[0], edge_ ? (kReadable | kWritable) : kWritable,
                                      [this, &s](uint32_t) { produce(s); });
      s.relay_in = std::make_unique<IoWatcher>(
          loop_, s.src[1], edge_ ? (kReadable | kWritable) : kReadable, [this, &s](uint32_t ev) {
            if (ev & kReadable) {
              s.src_readable = true;
              edge_ ? pumpEdge(s) : onSourceLevel(s);
            }
          });
      s.relay_out = std::make_unique<IoWatcher>(
          loop_, s.dst[0], edge_ ? (kReadable | kWritable) : 0, [this, &s](uint32_t ev) {
            if (ev & kWritable) {
              s.dst_writable = true;
              edge_ ? pumpEdge(s) : onSinkLevel(s);
            }
          });
      if (!slow_sink) {
        s.consumer = std::make_unique<IoWatcher>(
            loop_, s.dst[1], edge_ ? (kReadable | kWritable) : kReadable, [this, &s](uint32_t ev) {
              if (ev & kReadable) {
                consume(s);
              }
            });
      }
      s.dst_writable = true;
    }
  }
  ~BulkBench() {
    drain_.cancel();
    for (auto& s : sessions_) {
      s->producer.reset();
      s->relay_in.reset();
      s->relay_out.reset();
      s->consumer.reset();
      for (const int fd : {s->src[0], s->src[1], s->dst[0], s->dst[1]}) {
        ::close(fd);
      }
    }
  }

  void runChunks(uint64_t chunks) {
    target_bytes_ = consumed_bytes_ + chunks * kChunk;
    if (slow_sink_) {
      drain_.armAfter(std::chrono::nanoseconds(0));
    }
    loop_.run();
    drain_.cancel();
  }
  const EventLoop& loop() const { return loop_; }

 private:
  void produce(BulkSession& s) {
    do {
      const ssize_t n = countedWrite(s.src[0], payload_, kChunk);
      if (n <= 0) {
        return;
      }
    } while (edge_);
  }

  void consume(BulkSession& s) {
    char sink[kChunk];
    do {
      const ssize_t n = countedRead(s.dst[1], sink, sizeof(sink));
      if (n <= 0) {
        return;
      }
      consumed_bytes_ += static_cast<uint64_t>(n);
      if (consumed_bytes_ >= target_bytes_) {
        loop_.stop();
      }
    } while (edge_);
  }

  // A sink slower than the source, the same in both modes: not epoll-driven, it takes 8 KiB per
  // session per loop iteration (a zero-delay timer fires once per iteration).
  void drainSlowly() {
    char sink[kChunk / 2];
    for (auto& s : sessions_) {
      const ssize_t n = countedRead(s->dst[1], sink, sizeof(sink));
      if (n > 0) {
        consumed_bytes_ += static_cast<uint64_t>(n);
      }
    }
    if (consumed_bytes_ >= target_bytes_) {
      loop_.stop();
    } else {
      drain_.armAfter(std::chrono::nanoseconds(0));
    }
  }

  // Level: one read; on a short write, swap interest (2 epoll_ctl), swap back on drain (2 more).
  void onSourceLevel(BulkSession& s) {
    const ssize_t n = countedRead(s.src[1], s.buf, sizeof(s.buf));
    if (n <= 0) {
      return;
    }
    s.pending = static_cast<size_t>(n);
    s.offset = 0;
    flushLevel(s);
    if (s.pending > 0) {
      s.relay_in->enableRead(false);
      s.relay_out->enableWrite(true);
    }
  }
  void onSinkLevel(BulkSession& s) {
    flushLevel(s);
    if (s.pending == 0) {
      s.relay_out->enableWrite(false);
      s.relay_in->enableRead(true);
    }
  }
  void flushLevel(BulkSession& s) {
    const ssize_t n = countedWrite(s.dst[0], s.buf + s.offset, s.pending);
    if (n > 0) {
      s.offset += static_cast<size_t>(n);
      s.pending -= static_cast<size_t>(n);
    }
  }

  // Edge: latched readiness, loop until EAGAIN on whichever side blocks.
  void pumpEdge(BulkSession& s) {
    for (;;) {
      if (s.pending > 0) {
        if (!s.dst_writable) {
          return;
        }
        const ssize_t n = countedWrite(s.dst[0], s.buf + s.offset, s.pending);
        if (n < 0) {
          s.dst_writable = false;
          return;
        }
        s.offset += static_cast<size_t>(n);
        s.pending -= static_cast<size_t>(n);
        continue;
      }
      if (!s.src_readable) {
        return;
      }
      const ssize_t n = countedRead(s.src[1], s.buf, sizeof(s.buf));
      if (n <= 0) {
        s.src_readable = false;
        return;
      }
      s.pending = static_cast<size_t>(n);
      s.offset = 0;
    }
  }

  EventLoop loop_;
  const bool edge_;
  const bool slow_sink_;
  Timer drain_;
  const char* payload_;
  std::vector<std::unique_ptr<BulkSession>> sessions_;
  uint64_t consumed_bytes_ = 0;
  uint64_t target_bytes_ = 0;
};

// args: mode (0 level, 1 edge), sessions, tcp, slow sink
void BM_BulkRelay(benchmark::State& state) {
  const TriggerMode mode = state.range(0) == 0 ? TriggerMode::Level : TriggerMode::Edge;
  BulkBench bench(mode, static_cast<int>(state.range(1)), state.range(2) != 0, state.range(3) != 0);
  bench.runChunks(256);  // Warm up: fill socket buffers.
  constexpr uint64_t kChunksPerIteration = 2048;
  const Counters start = Counters::take(bench.loop());
  for (auto _ : state) {
    bench.runChunks(kChunksPerIteration);
  }
  const double ops = static_cast<double>(state.iterations() * kChunksPerIteration);
  report(state, bench.loop(), start, ops);
  state.SetBytesProcessed(static_cast<int64_t>(ops) * static_cast<int64_t>(kChunk));
}

// ---------------------------------------------------------------------------------------------
// Request/response: 64-byte messages echoed on many mostly-idle connections (SOCKS handshakes,
// small interactive traffic). One op = one round trip.

constexpr size_t kMsg = 64;

struct PingPongConn {
  int fds[2];  // client fds[0], server fds[1]
  std::unique_ptr<IoWatcher> client, server;
  size_t received = 0;
};

class PingPongBench {
 public:
  PingPongBench(TriggerMode mode, int conns, bool tcp)
      : loop_(EventLoopOptions{.trigger_mode = mode}), edge_(mode == TriggerMode::Edge) {
    const uint32_t interest = edge_ ? (kReadable | kWritable) : kReadable;
    for (int i = 0; i < conns; ++i) {
      conns_.push_back(std::make_unique<PingPongConn>());
      PingPongConn& c = *conns_.back();
      makePair(tcp, c.fds);
      c.server = std::make_unique<IoWatcher>(loop_, c.fds[1], interest, [this, &c](uint32_t ev) {
        if (ev & kReadable) {
          echo(c);
        }
      });
      c.client = std::make_unique<IoWatcher>(loop_, c.fds[0], interest, [this, &c](uint32_t ev) {
        if (ev & kReadable) {
          onReply(c);
        }
      });
    }
  }
  ~PingPongBench() {
    for (auto& c : conns_) {
      c->client.reset();
      c->server.reset();
      ::close(c->fds[0]);
      ::close(c->fds[1]);
    }
  }
  void start() {
    for (auto& c : conns_) {
      send(*c);
    }
  }
  void runRoundTrips(uint64_t n) {
    target_ = done_ + n;
    loop_.run();
  }
  const EventLoop& loop() const { return loop_; }

 private:
  void send(PingPongConn& c) {
    static const char msg[kMsg] = {};
    countedWrite(c.fds[0], msg, kMsg);
  }
  void echo(PingPongConn& c) {
    char buf[4096];
    do {
      const ssize_t n = countedRead(c.fds[1], buf, sizeof(buf));
      if (n <= 0) {
        return;
      }
      countedWrite(c.fds[1], buf, static_cast<size_t>(n));
    } while (edge_);
  }
  void onReply(PingPongConn& c) {
    char buf[4096];
    do {
      const ssize_t n = countedRead(c.fds[0], buf, sizeof(buf));
      if (n <= 0) {
        return;
      }
      c.received += static_cast<size_t>(n);
      while (c.received >= kMsg) {
        c.received -= kMsg;
        if (++done_ >= target_) {
          loop_.stop();
        }
        send(c);
      }
    } while (edge_);
  }

  EventLoop loop_;
  const bool edge_;
  std::vector<std::unique_ptr<PingPongConn>> conns_;
  uint64_t done_ = 0;
  uint64_t target_ = 0;
};

void BM_PingPong(benchmark::State& state) {
  const TriggerMode mode = state.range(0) == 0 ? TriggerMode::Level : TriggerMode::Edge;
  PingPongBench bench(mode, static_cast<int>(state.range(1)), state.range(2) != 0);
  bench.start();
  bench.runRoundTrips(1000);
  constexpr uint64_t kPerIteration = 5000;
  const Counters start = Counters::take(bench.loop());
  for (auto _ : state) {
    bench.runRoundTrips(kPerIteration);
  }
  const double ops = static_cast<double>(state.iterations() * kPerIteration);
  report(state, bench.loop(), start, ops);
  state.SetItemsProcessed(static_cast<int64_t>(ops));
}

// ---------------------------------------------------------------------------------------------
// Timers: re-arm one of 100k armed idle timers (activity on a connection), and arm+cancel.

void BM_TimerRearmAmong100k(benchmark::State& state) {
  constexpr size_t kTimers = 100'000;
  EventLoop loop;
  std::vector<std::unique_ptr<Timer>> timers;
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < kTimers; ++i) {
    timers.push_back(std::make_unique<Timer>(loop, [] {}));
    timers.back()->armAfter(std::chrono::seconds(300) +
                            std::chrono::microseconds(rng() % 10'000'000));
  }
  size_t i = 0;
  const uint64_t moves_before = loop.timerHeapMoves();
  for (auto _ : state) {
    // Push a pseudo-random connection's idle deadline out by a little more than the others.
    i = (i + 7919) % kTimers;
    timers[i]->armAfter(std::chrono::seconds(300) + std::chrono::microseconds(rng() % 10'000'000));
  }
  state.counters["heap_moves/op"] = static_cast<double>(loop.timerHeapMoves() - moves_before) /
                                    static_cast<double>(state.iterations());
  timers.clear();
}

void BM_TimerArmCancelAmong100k(benchmark::State& state) {
  constexpr size_t kTimers = 100'000;
  EventLoop loop;
  std::vector<std::unique_ptr<Timer>> timers;
  std::mt19937_64 rng(2);
  for (size_t i = 0; i < kTimers; ++i) {
    timers.push_back(std::make_unique<Timer>(loop, [] {}));
    timers.back()->armAfter(std::chrono::seconds(300) +
                            std::chrono::microseconds(rng() % 10'000'000));
  }
  Timer extra(loop, [] {});
  for (auto _ : state) {
    extra.armAfter(std::chrono::seconds(300) + std::chrono::microseconds(rng() % 10'000'000));
    extra.cancel();
  }
  timers.clear();
}

BENCHMARK(BM_BulkRelay)
    ->ArgNames({"edge", "sessions", "tcp", "slow"})
    ->ArgsProduct({{0, 1}, {1, 64}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_PingPong)
    ->ArgNames({"edge", "conns", "tcp"})
    ->ArgsProduct({{0, 1}, {1, 256}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_TimerRearmAmong100k);
BENCHMARK(BM_TimerArmCancelAmong100k);

}  // namespace
}  // namespace shadowrelay::relay

BENCHMARK_MAIN();
