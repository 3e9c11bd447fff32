// SPDX-License-Identifier: Apache-2.0
#include "crypto/salt_filter.h"

#include <random>
#include <thread>

#include "crypto/key_derivation.h"
#include "gtest/gtest.h"

namespace shadowrelay::crypto {
namespace {

std::vector<uint8_t> salt(uint64_t i, size_t len = 32) {
  std::vector<uint8_t> s(len);
  std::mt19937_64 rng(i * 7919 + 1);
  for (auto& b : s) b = static_cast<uint8_t>(rng());
  return s;
}

TEST(SaltFilterTest, RejectsReplayAndAcceptsNew) {
  SaltFilter f(10000, 1e-9, 4);
  EXPECT_TRUE(f.checkAndInsert(salt(1)));
  EXPECT_FALSE(f.checkAndInsert(salt(1)));
  EXPECT_TRUE(f.contains(salt(1)));
  EXPECT_FALSE(f.contains(salt(2)));
  f.insert(salt(2));
  EXPECT_FALSE(f.checkAndInsert(salt(2)));
}

TEST(SaltFilterTest, RemembersAtLeastHalfTheCapacityAndForgetsOlderSalts) {
  const size_t capacity = 20000;
  SaltFilter f(capacity, 1e-9, 1);
  for (uint64_t i = 0; i < capacity * 2; ++i) f.insert(salt(i));
  size_t remembered = 0;
  for (uint64_t i = capacity * 2 - capacity / 2; i < capacity * 2; ++i) {
    remembered += f.contains(salt(i)) ? 1 : 0;
  }
  EXPECT_EQ(remembered, capacity / 2);
  size_t old = 0;
  for (uint64_t i = 0; i < capacity / 2; ++i) old += f.contains(salt(i)) ? 1 : 0;
  EXPECT_LT(old, 10u);  // rotated out (only false positives remain)
}

TEST(SaltFilterTest, FalsePositiveRateWithinBound) {
  const size_t capacity = 100000;
  const double rate = 1e-4;  // measurable in a short test
  SaltFilter f(capacity, rate, 8);
  for (uint64_t i = 0; i < capacity; ++i) f.insert(salt(i));
  size_t fp = 0;
  const size_t probes = 200000;
  for (uint64_t i = 0; i < probes; ++i) fp += f.contains(salt(1'000'000 + i)) ? 1 : 0;
  // Documented bound: at most 2 * rate (two halves checked); allow sampling noise.
  EXPECT_LT(static_cast<double>(fp) / probes, 3 * rate) << fp;
}

TEST(SaltFilterTest, DefaultMemoryMatchesDocumentation) {
  SaltFilter f;
  EXPECT_GT(f.memoryBytes(), 5u << 20);
  EXPECT_LT(f.memoryBytes(), 6u << 20);
  EXPECT_EQ(f.hashCount(), 30u);
}

TEST(SaltFilterTest, ConcurrentCheckAndInsertAdmitsEachSaltOnce) {
  SaltFilter f(100000, 1e-9, 16);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (uint64_t i = 0; i < 5000; ++i) admitted += f.checkAndInsert(salt(i)) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 5000);
}

}  // namespace
}  // namespace shadowrelay::crypto
