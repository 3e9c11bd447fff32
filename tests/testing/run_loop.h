// SPDX-License-Identifier: Apache-2.0
#pragma once
// Driving a relay::EventLoop on the test thread: every wait is bounded in iterations and in
// wall-clock time, and reports whether the condition was met (never a sleep).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "relay/event/event_loop.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay::testing {

/// Longest single epoll_wait of the helpers below: short, so a condition made true by a
/// socket the loop does not watch (a test peer) is seen soon.
inline constexpr std::chrono::milliseconds kLoopStep{5};
/// Iterations at most per wait, whatever the clock says (a busy loop cannot run away).
inline constexpr size_t kMaxIterations = 100'000;
/// Iterations run before asserting that something did not happen (nothing sent, no connect):
/// what was in flight has had its turn.
inline constexpr size_t kSettleIterations = 20;
/// How long a wait for something that should happen soon may take at most.
inline constexpr std::chrono::milliseconds kWaitLimit{5000};

/// Runs `loop` until `done()` holds or `limit` has passed; returns whether it held. `done` is
/// called once before each iteration and may have effects (accept, read): once it returned
/// true it is not called again.
template <typename Pred>
bool runUntil(EventLoop& loop, Pred done, std::chrono::milliseconds limit = kWaitLimit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (size_t i = 0; i < kMaxIterations; ++i) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    loop.runOnce(kLoopStep);
  }
  return done();
}

/// Runs `loop` for `iterations` iterations (each waiting at most kLoopStep): lets work already
/// in flight settle before asserting that something did not happen.
inline void runIterations(EventLoop& loop, size_t iterations) {
  for (size_t i = 0; i < iterations; ++i) loop.runOnce(kLoopStep);
}

// The same for a non-blocking socket of the test (tests/testing/loopback.h) that the loop does
// not watch.

/// Runs `loop` until stream `fd` has given `n` bytes in all (appended to `*got`) or was closed.
/// True if the `n` bytes came.
bool readAtLeast(EventLoop& loop, int fd, size_t n, std::vector<uint8_t>* got);
/// readAtLeast(), then kSettleIterations more: exactly what came (extra bytes included).
std::vector<uint8_t> readSettled(EventLoop& loop, int fd, size_t n);
/// Runs `loop` until the peer of stream `fd` closed (bytes before the EOF appended to `*got`).
/// False if it stayed open for `limit`.
bool waitForEof(EventLoop& loop, int fd, std::vector<uint8_t>* got,
                std::chrono::milliseconds limit = kWaitLimit);
/// Runs `loop` until `listener` has a connection; invalid if none came.
Fd acceptWithin(EventLoop& loop, int listener);
/// Runs `loop` until UDP socket `fd` has a datagram and takes it (its source in `*from` when
/// given); empty if none came.
std::vector<uint8_t> awaitDatagram(EventLoop& loop, int fd, SocketAddress* from = nullptr);

}  // namespace shadowrelay::relay::testing
