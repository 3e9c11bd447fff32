// SPDX-License-Identifier: Apache-2.0
// The per-user rate bucket (GCRA in one atomic) with an injected clock: the rate it keeps to,
// the burst an idle user gets, UDP's refusals, the waits it asks for, and that two threads
// drawing at once share the rate rather than each getting it.
#include "relay/users/rate_bucket.h"

#include <barrier>
#include <cstdint>
#include <thread>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1000 * kMs;
// The clock does not start at 0: a bucket must not take its zero for "long idle" and give more.
constexpr int64_t kStart = 5000 * kSecond;

TEST(RateBucketTest, IdleBucketGivesOneBurstThenNothing) {
  RateBucket bucket;
  const uint64_t burst = kMiB / 10;  // 100 ms of 1 MiB/s
  EXPECT_NEAR(static_cast<double>(bucket.room(kMiB, kStart)), burst, 1);
  bucket.charge(kMiB, bucket.room(kMiB, kStart), kStart);
  EXPECT_EQ(bucket.room(kMiB, kStart), 0u);
  // Half the burst frees in 50 ms; the wait asks for that much.
  EXPECT_NEAR(static_cast<double>(bucket.wait(kStart)), 50 * kMs, 1000);
  EXPECT_NEAR(static_cast<double>(bucket.room(kMiB, kStart + 50 * kMs)), burst / 2, 2);
  // Before that, nothing: not the few bytes each microsecond frees.
  EXPECT_EQ(bucket.room(kMiB, kStart + 49 * kMs), 0u);
  EXPECT_EQ(bucket.room(kMiB, kStart + 1000), 0u);
  // A long idle time banks no more than the burst.
  EXPECT_NEAR(static_cast<double>(bucket.room(kMiB, kStart + 3600 * kSecond)), burst, 1);
}

TEST(RateBucketTest, ReadsCappedToTheRoomKeepTheRate) {
  // A reader that reads what room() allows (at most 64 KiB) every millisecond for 10 s.
  RateBucket bucket;
  const uint64_t rate = 3 * kMiB;
  uint64_t total = 0;
  for (int64_t t = kStart; t < kStart + 10 * kSecond; t += kMs) {
    const uint64_t n = std::min<uint64_t>(bucket.room(rate, t), 64 * 1024);
    if (n == 0) continue;
    bucket.charge(rate, n, t);
    total += n;
  }
  const double expected = 10.0 * rate;  // plus one burst at most
  EXPECT_GE(total, expected * 0.99);
  EXPECT_LE(total, expected + rate / 10 + 1);
}

TEST(RateBucketTest, ChargeBeyondTheRoomIsPaidBackByWaiting) {
  RateBucket bucket;
  const uint64_t rate = kMiB;
  bucket.charge(rate, kMiB, kStart);  // a whole second's worth at once (read before charged)
  EXPECT_EQ(bucket.room(rate, kStart + 800 * kMs), 0u);
  // Free again (half a burst) once 1 s - 50 ms passed.
  EXPECT_NEAR(static_cast<double>(bucket.wait(kStart)), 950 * kMs, kMs);
  EXPECT_GT(bucket.room(rate, kStart + 960 * kMs), 0u);
}

TEST(RateBucketTest, DatagramsOverTheRateAreRefusedAndCostNothing) {
  RateBucket bucket;
  const uint64_t rate = 100'000;  // the burst is 10000 bytes
  int taken = 0;
  for (int i = 0; i < 20; ++i) taken += bucket.tryTake(rate, 1000, kStart) ? 1 : 0;
  EXPECT_EQ(taken, 10);
  // A refusal draws nothing: after 10 ms exactly one more datagram of 1000 bytes fits.
  EXPECT_TRUE(bucket.tryTake(rate, 1000, kStart + 10 * kMs));
  EXPECT_FALSE(bucket.tryTake(rate, 1000, kStart + 10 * kMs));
  // Over a second at one datagram per millisecond, the rate's worth get through.
  int later = 0;
  for (int64_t t = kStart + 1000 * kMs; t < kStart + 2000 * kMs; t += kMs) {
    later += bucket.tryTake(rate, 1000, t) ? 1 : 0;
  }
  EXPECT_GE(later, 99);
  EXPECT_LE(later, 111);  // 100 per second, plus the burst banked during the idle gap
}

// Runs draw(who, now) on two threads in lockstep through `steps` milliseconds of injected time
// (both at the same step, a barrier between steps), with who 0 and 1.
template <typename Draw>
void inLockstep(int steps, Draw draw) {
  std::barrier step(2);
  auto run = [&](int who) {
    for (int i = 0; i < steps; ++i) {
      draw(who, kStart + i * kMs);
      step.arrive_and_wait();
    }
  };
  std::thread a(run, 0);
  std::thread b(run, 1);
  a.join();
  b.join();
}

TEST(RateBucketTest, TwoThreadsDrawingAtOnceShareTheRate) {
  // Each thread draws what the room allows at every step (TCP style). Together they get the
  // rate, not twice it, and each gets a real share.
  RateBucket bucket;
  const uint64_t rate = 2 * kMiB;
  uint64_t got[2] = {0, 0};
  inLockstep(5000, [&](int who, int64_t now) {
    const uint64_t n = std::min<uint64_t>(bucket.room(rate, now), 16 * 1024);
    if (n > 0) {
      bucket.charge(rate, n, now);
      got[who] += n;
    }
  });
  const double expected = 5.0 * rate;
  const double total = static_cast<double>(got[0] + got[1]);
  EXPECT_GE(total, expected * 0.98);
  // Both may read the same room at one step: at most one read each beyond the rate and burst.
  EXPECT_LE(total, expected + rate / 10.0 + 2 * 16 * 1024);
  EXPECT_GT(got[0], expected / 10);
  EXPECT_GT(got[1], expected / 10);
}

TEST(RateBucketTest, TwoThreadsTakingDatagramsShareTheRate) {
  RateBucket bucket;
  const uint64_t rate = kMiB;
  uint64_t got[2] = {0, 0};
  inLockstep(4000, [&](int who, int64_t now) {
    for (int k = 0; k < 4; ++k) {  // 4 x 1200 bytes a millisecond each: far over the rate
      if (bucket.tryTake(rate, 1200, now)) got[who] += 1200;
    }
  });
  const double expected = 4.0 * rate;
  const double total = static_cast<double>(got[0] + got[1]);
  EXPECT_GE(total, expected * 0.98);
  EXPECT_LE(total, expected + rate / 10.0 + 1200);  // never beyond the rate and one burst
  EXPECT_GT(got[0], expected / 10);
  EXPECT_GT(got[1], expected / 10);
}

TEST(RateBucketTest, OverlappingWaitsAreNotedOnce) {
  RateBucket bucket;
  EXPECT_EQ(bucket.noteWait(kStart, kStart + 100 * kMs), 100 * kMs);
  // A second session waiting over the same time adds only what sticks out.
  EXPECT_EQ(bucket.noteWait(kStart + 50 * kMs, kStart + 150 * kMs), 50 * kMs);
  EXPECT_EQ(bucket.noteWait(kStart + 60 * kMs, kStart + 120 * kMs), 0);
  // After a gap, the whole wait.
  EXPECT_EQ(bucket.noteWait(kStart + 1000 * kMs, kStart + 1010 * kMs), 10 * kMs);
}

TEST(RateBucketTest, CostRoundsUpAndSurvivesHugeRatesAndDraws) {
  EXPECT_EQ(RateBucket::costOf(kMiB, kMiB), kSecond);
  EXPECT_EQ(RateBucket::costOf(uint64_t{1} << 62, 1), 1);
  EXPECT_GT(RateBucket::costOf(1, uint64_t{1} << 40), 0);
  EXPECT_EQ(RateBucket::costOf(UINT64_MAX, 1), 1);  // rounded up, no wrap
  RateBucket bucket;
  EXPECT_GT(bucket.room(UINT64_MAX, kStart), 0u);
}

TEST(RateBucketTest, ATinyRateStillMovesAByteAtATime) {
  // 2 bytes/s: half a burst is a tenth of a byte; a reader still gets one byte, then waits
  // about half a second for the next.
  RateBucket bucket;
  EXPECT_EQ(bucket.room(2, kStart), 1u);
  bucket.charge(2, 1, kStart);
  EXPECT_EQ(bucket.room(2, kStart + 100 * kMs), 0u);
  EXPECT_NEAR(static_cast<double>(bucket.wait(kStart)), 450 * kMs, kMs);
  EXPECT_EQ(bucket.room(2, kStart + 450 * kMs), 1u);
}

}  // namespace
}  // namespace shadowrelay::relay
