// SPDX-License-Identifier: Apache-2.0
// The worker's budgets (issue 15 §1, §5): token buckets refill at their rate up to their burst,
// sources are keyed by IPv4 address or IPv6 /64, and byte holds give back what they took.
#include "relay/context/worker_budgets.h"

#include <chrono>

#include "gtest/gtest.h"
#include "tests/testing/loopback.h"

namespace shadowrelay::relay {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

TEST(TokenBucket, StartsFullRefillsAtItsRateAndNeverPassesItsBurst) {
  const Clock::time_point t0{};
  TokenBucket bucket(/*rate=*/100, /*burst=*/10, t0);
  EXPECT_EQ(bucket.available(t0), 10u);
  bucket.take(25, t0);  // never below zero
  EXPECT_EQ(bucket.available(t0), 0u);
  EXPECT_EQ(bucket.available(t0 + milliseconds(50)), 5u);
  EXPECT_EQ(bucket.available(t0 + milliseconds(10'000)), 10u);
}

TEST(WorkerBudgets, SourcesAreIpv4AddressesOrIpv6Slash64s) {
  const auto a = testing::loopbackAddress(1000, "127.0.0.1");
  const auto b = testing::loopbackAddress(2000, "127.0.0.1");
  const auto c = testing::loopbackAddress(1000, "127.0.0.2");
  EXPECT_EQ(WorkerBudgets::sourceKey(a), WorkerBudgets::sourceKey(b));  // the port is not it
  EXPECT_NE(WorkerBudgets::sourceKey(a), WorkerBudgets::sourceKey(c));
  const auto v6a = parseSocketAddress("2001:db8:1:2::1", 1);
  const auto v6b = parseSocketAddress("2001:db8:1:2:ffff::9", 2);
  const auto v6c = parseSocketAddress("2001:db8:1:3::1", 1);
  const auto mapped = parseSocketAddress("::ffff:127.0.0.1", 1);
  ASSERT_TRUE(v6a.ok() && v6b.ok() && v6c.ok() && mapped.ok());
  EXPECT_EQ(WorkerBudgets::sourceKey(*v6a), WorkerBudgets::sourceKey(*v6b));
  EXPECT_NE(WorkerBudgets::sourceKey(*v6a), WorkerBudgets::sourceKey(*v6c));
  EXPECT_EQ(WorkerBudgets::sourceKey(*mapped), WorkerBudgets::sourceKey(a));
}

TEST(WorkerBudgets, FailedTrialsArePaidByTheSourceAndTheWorker) {
  const Clock::time_point t0{};
  WorkerBudgets budgets({.trials_per_second = 800, .source_trials_per_second = 8}, t0);
  // Bursts: an eighth of a second of the rate, at least 64.
  WorkerBudgets::Source& one = budgets.source("one", t0);
  EXPECT_EQ(budgets.trialsAllowed(one, t0), 64u);
  budgets.chargeTrials(one, 64, t0);
  EXPECT_EQ(budgets.trialsAllowed(one, t0), 0u);
  WorkerBudgets::Source& two = budgets.source("two", t0);
  EXPECT_EQ(budgets.trialsAllowed(two, t0), 36u);  // its own 64, the worker's 100 - 64
  budgets.chargeTrials(two, 36, t0);
  EXPECT_EQ(budgets.trialsAllowed(two, t0), 0u);  // the worker's are spent now
  EXPECT_EQ(budgets.trialsAllowed(budgets.source("three", t0), t0), 0u);
}

TEST(ByteBudget, HoldsGiveBackWhatTheyTook) {
  ByteBudget budget(100);
  EXPECT_TRUE(budget.take(60));
  EXPECT_FALSE(budget.take(41));
  {
    BudgetHold hold(&budget, 60);
    BudgetHold moved = std::move(hold);
  }
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_TRUE(budget.take(100));
}

}  // namespace
}  // namespace shadowrelay::relay
