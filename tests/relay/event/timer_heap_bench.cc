// SPDX-License-Identifier: Apache-2.0
// Timer-heap costs at 100k armed timers (docs/REACTOR.md).
//
//   bazel run -c opt //tests/relay/event:timer_heap_bench -- --benchmark_repetitions=5
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "relay/event/event_loop.h"
#include "relay/event/timer.h"

namespace shadowrelay::relay {
namespace {

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

BENCHMARK(BM_TimerRearmAmong100k);
BENCHMARK(BM_TimerArmCancelAmong100k);

}  // namespace
}  // namespace shadowrelay::relay

BENCHMARK_MAIN();
