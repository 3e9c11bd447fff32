// SPDX-License-Identifier: Apache-2.0
#pragma once
// A byte rate shared by every session of a user on every worker, drawn from without a lock: the
// generic cell rate algorithm (virtual scheduling) in one atomic. `tat` is the time at which
// the bytes drawn so far would have been sent at the rate; the bucket admits bytes while
// tat stays at most kBurst ahead of now, so an idle user may send a burst of kBurst worth of
// the rate at once and no more. The rate is an argument of every call (the user's limit can
// change between two calls); times are nanoseconds of one monotonic clock (the loops' Clock),
// passed in so that tests drive the clock.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace shadowrelay::relay {

class RateBucket {
 public:
  /// How far ahead of now the bucket may run: a burst of 100 ms of the rate. Small enough that
  /// a transfer of a few seconds keeps to the rate within a few percent, large enough that a
  /// paused session wakes a few times per 100 ms, not per packet.
  static constexpr int64_t kBurstNanos = 100'000'000;

  /// Bytes that may be read now at `rate` bytes/s: up to kBurst of the rate when idle, and 0
  /// while less than half of the burst is free, so that a reader reads worthwhile amounts
  /// (half a burst or more) instead of the few bytes each microsecond frees. A reader caps its
  /// read to this; several readers may see the same room at once (charge() makes them all
  /// pay: the overshoot is paid back by waiting longer).
  uint64_t room(uint64_t rate, int64_t now) const;
  /// When room() is 0: nanoseconds until half of the burst is free again (at least 1 ms), when
  /// room() admits a read again.
  int64_t wait(int64_t now) const;
  /// Draws `n` bytes already read (TCP: never refused; the debt delays the next reads).
  void charge(uint64_t rate, uint64_t n, int64_t now);
  /// Draws `n` bytes if they fit within the burst; false, drawing nothing, if not (UDP: the
  /// datagram is dropped).
  bool tryTake(uint64_t rate, uint64_t n, int64_t now);

  /// Notes that the user's traffic of this direction waits from `now` until `until`; returns
  /// the nanoseconds of that span not noted already (by this or another session), so that the
  /// sum of the returns is the time during which at least one session waited.
  int64_t noteWait(int64_t now, int64_t until);

  /// Nanoseconds that `n` bytes take at `rate` bytes/s.
  static int64_t costOf(uint64_t rate, uint64_t n);

 private:
  std::atomic<int64_t> tat_{0};
  std::atomic<int64_t> waited_until_{0};
};

/// Nanoseconds of `t` since the clock's epoch: the time unit of RateBucket.
inline int64_t rateClockNanos(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace shadowrelay::relay
