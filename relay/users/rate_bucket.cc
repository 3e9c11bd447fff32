// SPDX-License-Identifier: Apache-2.0
#include "relay/users/rate_bucket.h"

#include <algorithm>
#include <limits>

namespace shadowrelay::relay {

namespace {
constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr int64_t kMinWait = 1'000'000;  // 1 ms: below it a timer costs more than it saves
// Larger draws are charged as this many bytes: n * 1e9 stays within 64 bits (no read or
// datagram comes near it).
constexpr uint64_t kMaxDraw = uint64_t{1} << 32;
}  // namespace

int64_t RateBucket::costOf(uint64_t rate, uint64_t n) {
  if (rate == 0) return 0;
  const uint64_t nanos = std::min(n, kMaxDraw) * kNanosPerSecond;
  // Rounded up (without adding rate - 1, which could wrap for huge rates): a rate above 1 GB/s
  // still charges a byte as at least a nanosecond's share.
  return static_cast<int64_t>(nanos / rate + (nanos % rate != 0 ? 1 : 0));
}

uint64_t RateBucket::room(uint64_t rate, int64_t now) const {
  const int64_t ahead = tat_.load(std::memory_order_relaxed) - now;
  const int64_t free_nanos = kBurstNanos - std::max<int64_t>(ahead, 0);
  if (free_nanos < kBurstNanos / 2) return 0;
  // In floating point: free_nanos * rate can pass 64 bits for rates above 92 GB/s.
  const double bytes = static_cast<double>(free_nanos) * static_cast<double>(rate) / 1e9;
  if (bytes >= static_cast<double>(kMaxDraw)) return kMaxDraw;
  // At least a byte: below 20 bytes/s half a burst is less than one, and the reader must still
  // make progress (the byte's cost then makes it wait the longer).
  return std::max<uint64_t>(static_cast<uint64_t>(bytes), 1);
}

int64_t RateBucket::wait(int64_t now) const {
  const int64_t ahead = tat_.load(std::memory_order_relaxed) - now;
  return std::max(ahead - kBurstNanos / 2, kMinWait);
}

void RateBucket::charge(uint64_t rate, uint64_t n, int64_t now) {
  const int64_t cost = costOf(rate, n);
  int64_t tat = tat_.load(std::memory_order_relaxed);
  // max(tat, now) + cost: an idle bucket does not bank more than the burst.
  while (!tat_.compare_exchange_weak(tat, std::max(tat, now) + cost, std::memory_order_relaxed)) {
  }
}

bool RateBucket::tryTake(uint64_t rate, uint64_t n, int64_t now) {
  const int64_t cost = costOf(rate, n);
  int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t next = std::max(tat, now) + cost;
    if (next - now > kBurstNanos) return false;
    if (tat_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return true;
  }
}

int64_t RateBucket::noteWait(int64_t now, int64_t until) {
  int64_t noted = waited_until_.load(std::memory_order_relaxed);
  for (;;) {
    if (until <= noted) return 0;  // covered by a wait noted already
    if (waited_until_.compare_exchange_weak(noted, until, std::memory_order_relaxed)) {
      return until - std::max(noted, now);
    }
  }
}

}  // namespace shadowrelay::relay
