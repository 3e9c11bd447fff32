// SPDX-License-Identifier: Apache-2.0
#include "crypto/salt_store_2022.h"

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace shadowrelay::crypto {
namespace {

using Result = SaltStore2022::Result;

// Salt i: `size` bytes, distinct for distinct i (i in the first eight bytes, big-endian).
std::vector<uint8_t> salt(uint64_t i, size_t size = 16) {
  std::vector<uint8_t> s(size, 0xA5);
  for (int b = 0; b < 8; ++b) s[b] = static_cast<uint8_t>(i >> (56 - 8 * b));
  return s;
}

constexpr uint64_t kT0 = 1'700'000'000;  // a multiple of the bucket width

TEST(SaltStore2022Test, RejectsAReplayAndAcceptsNewSalts) {
  SaltStore2022 store;
  EXPECT_EQ(store.checkAndInsert(salt(1), kT0), Result::Fresh);
  EXPECT_EQ(store.checkAndInsert(salt(1), kT0), Result::Replayed);
  EXPECT_EQ(store.checkAndInsert(salt(2), kT0), Result::Fresh);
  EXPECT_EQ(store.size(), 2u);
}

TEST(SaltStore2022Test, ExactNoFalsePositives) {
  // Salts that differ in one bit only are all distinct to an exact set.
  SaltStore2022 store;
  std::vector<uint8_t> base(32, 0);
  EXPECT_EQ(store.checkAndInsert(base, kT0), Result::Fresh);
  for (size_t bit = 0; bit < 256; ++bit) {
    std::vector<uint8_t> s = base;
    s[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    EXPECT_EQ(store.checkAndInsert(s, kT0), Result::Fresh) << bit;
  }
  for (uint64_t i = 0; i < 20000; ++i) {
    ASSERT_EQ(store.checkAndInsert(salt(i + 1000, 32), kT0 + i % 7), Result::Fresh) << i;
  }
  EXPECT_EQ(store.size(), 257u + 20000u);
}

TEST(SaltStore2022Test, SaltsOfDifferentSizesDoNotClash) {
  SaltStore2022 store;
  std::vector<uint8_t> s16(16, 0);
  std::vector<uint8_t> s32(32, 0);  // s16 zero-padded
  EXPECT_EQ(store.checkAndInsert(s16, kT0), Result::Fresh);
  EXPECT_EQ(store.checkAndInsert(s32, kT0), Result::Fresh);
}

TEST(SaltStore2022Test, KeepsEverySaltForAtLeastSixtySeconds) {
  // Whatever the insertion time within a bucket, the salt is still there 60 s later.
  for (uint64_t offset = 0; offset < SaltStore2022::kBucketSeconds; ++offset) {
    SaltStore2022 store;
    const uint64_t t = kT0 + offset;
    ASSERT_EQ(store.checkAndInsert(salt(7), t), Result::Fresh);
    for (uint64_t later = t; later <= t + SaltStore2022::kRetentionSeconds; ++later) {
      ASSERT_EQ(store.checkAndInsert(salt(7), later), Result::Replayed)
          << "inserted at +" << offset << ", checked " << later - t << " s later";
    }
  }
}

TEST(SaltStore2022Test, ForgetsAfterAtMostSeventySeconds) {
  SaltStore2022 store;
  ASSERT_EQ(store.checkAndInsert(salt(7), kT0), Result::Fresh);
  ASSERT_EQ(store.checkAndInsert(salt(8), kT0 + 9), Result::Fresh);
  // Bucket kT0 (both salts) expires when the bucket 70 s later begins.
  EXPECT_EQ(store.checkAndInsert(salt(9), kT0 + 70), Result::Fresh);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.checkAndInsert(salt(7), kT0 + 70), Result::Fresh);
  EXPECT_EQ(store.checkAndInsert(salt(8), kT0 + 71), Result::Fresh);
}

TEST(SaltStore2022Test, AClockSteppingBackForgetsNothingEarly) {
  SaltStore2022 store;
  ASSERT_EQ(store.checkAndInsert(salt(1), kT0 + 100), Result::Fresh);
  // The wall clock steps back 50 s: the salt inserted now still lives in the newest bucket.
  ASSERT_EQ(store.checkAndInsert(salt(2), kT0 + 50), Result::Fresh);
  EXPECT_EQ(store.checkAndInsert(salt(2), kT0 + 100 + 60), Result::Replayed);
  EXPECT_EQ(store.checkAndInsert(salt(1), kT0 + 55), Result::Replayed);
}

TEST(SaltStore2022Test, AtTheCapNewSaltsAreRefusedNotInsertedUntilABucketExpires) {
  SaltStore2022 store(100);
  for (uint64_t i = 0; i < 100; ++i) {
    ASSERT_EQ(store.checkAndInsert(salt(i), kT0 + i / 20), Result::Fresh) << i;
  }
  EXPECT_EQ(store.checkAndInsert(salt(1000), kT0 + 5), Result::Full);
  EXPECT_EQ(store.checkAndInsert(salt(1000), kT0 + 5), Result::Full);   // not inserted
  EXPECT_EQ(store.checkAndInsert(salt(3), kT0 + 5), Result::Replayed);  // replays still caught
  EXPECT_EQ(store.size(), 100u);
  // Nothing live is evicted: 60 s on, every salt is still known.
  for (uint64_t i = 0; i < 100; ++i) {
    ASSERT_EQ(store.checkAndInsert(salt(i), kT0 + 60), Result::Replayed) << i;
  }
  // Once the bucket of kT0 expires (70 s), there is room again.
  EXPECT_EQ(store.checkAndInsert(salt(1000), kT0 + 70), Result::Fresh);
  EXPECT_EQ(store.size(), 1u);
}

TEST(SaltStore2022Test, SharedByThreadsEverySaltAcceptedExactlyOnce) {
  SaltStore2022 store;
  std::atomic<int> fresh{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (uint64_t i = 0; i < 5000; ++i) {
        if (store.checkAndInsert(salt(i, 32), kT0) == Result::Fresh) ++fresh;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(fresh.load(), 5000);
  EXPECT_EQ(store.size(), 5000u);
}

}  // namespace
}  // namespace shadowrelay::crypto
