// SPDX-License-Identifier: Apache-2.0
#include "relay/upstream/upstream_balancer.h"

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

constexpr uint64_t kSeeds = 200;

std::vector<Upstream> servers(size_t n) {
  std::vector<Upstream> out(n);
  for (size_t i = 0; i < n; ++i) out[i].label = "s" + std::to_string(i);
  return out;
}

/// The servers each seed picks first.
std::set<size_t> firstPicks(const UpstreamBalancer& balancer) {
  std::set<size_t> firsts;
  for (uint64_t seed = 0; seed < kSeeds; ++seed) firsts.insert(balancer.plan(seed).front());
  return firsts;
}

TEST(UpstreamBalancerTest, OneServerIsTheWholePlan) {
  UpstreamBalancer balancer(servers(1));
  EXPECT_EQ(balancer.plan(7), UpstreamBalancer::Plan({0}));
  EXPECT_EQ(balancer.best(8), 0u);
}

TEST(UpstreamBalancerTest, UnmeasuredServersShareTheFirstPick) {
  UpstreamBalancer balancer(servers(3));
  EXPECT_EQ(firstPicks(balancer), (std::set<size_t>{0, 1, 2}));
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    EXPECT_EQ(balancer.plan(seed).size(), 3u) << "every server is a failover candidate";
  }
}

TEST(UpstreamBalancerTest, OrdersByLowestLatency) {
  UpstreamBalancer balancer(servers(3));
  balancer.onProbe(0, milliseconds(30));
  balancer.onProbe(1, milliseconds(10));
  balancer.onProbe(2, milliseconds(20));
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    EXPECT_EQ(balancer.plan(seed), UpstreamBalancer::Plan({1, 2, 0}));
  }
}

TEST(UpstreamBalancerTest, PicksAtRandomAmongEquallyFastServers) {
  UpstreamBalancer balancer(servers(3));
  balancer.onProbe(0, microseconds(1000));
  balancer.onProbe(1, microseconds(1200));  // within the tie band of the best
  balancer.onProbe(2, milliseconds(50));    // clearly slower: never first
  EXPECT_EQ(firstPicks(balancer), (std::set<size_t>{0, 1}));
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    const UpstreamBalancer::Plan plan = balancer.plan(seed);
    ASSERT_EQ(plan.size(), 3u);
    EXPECT_EQ(plan.back(), 2u) << "the rest stay in latency order";
  }
}

TEST(UpstreamBalancerTest, RepeatedConnectFailuresMarkAServerDown) {
  UpstreamBalancer balancer(servers(2));
  for (int i = 1; i < UpstreamBalancer::kFailuresToMarkDown; ++i) balancer.onConnectFailed(0);
  EXPECT_TRUE(balancer.up(0));
  balancer.onConnected(0, milliseconds(1));  // a success breaks the streak
  for (int i = 1; i < UpstreamBalancer::kFailuresToMarkDown; ++i) balancer.onConnectFailed(0);
  EXPECT_TRUE(balancer.up(0));
  balancer.onConnectFailed(0);
  EXPECT_FALSE(balancer.up(0));
  for (uint64_t seed = 0; seed < kSeeds; ++seed) {
    EXPECT_EQ(balancer.plan(seed), UpstreamBalancer::Plan({1})) << "a down server is skipped";
  }
  const std::vector<UpstreamState> states = balancer.states();
  EXPECT_EQ(states[0].connect_failures,
            static_cast<uint64_t>(2 * UpstreamBalancer::kFailuresToMarkDown - 1));
  EXPECT_EQ(states[0].sessions, 1u);
  EXPECT_FALSE(states[0].up);
  EXPECT_TRUE(states[1].up);
}

TEST(UpstreamBalancerTest, OnlyAProbeBringsADownServerBack) {
  UpstreamBalancer balancer(servers(2));
  balancer.onProbe(0, std::nullopt);
  EXPECT_FALSE(balancer.up(0)) << "a failed probe marks down at once";
  balancer.onConnected(0, milliseconds(1));  // e.g. a session that began before
  EXPECT_FALSE(balancer.up(0));
  balancer.onProbe(0, milliseconds(2));
  EXPECT_TRUE(balancer.up(0));
  EXPECT_EQ(firstPicks(balancer).count(0), 1u) << "used again";
}

TEST(UpstreamBalancerTest, EveryServerDownStillGivesAPlan) {
  UpstreamBalancer balancer(servers(2));
  balancer.onProbe(0, std::nullopt);
  balancer.onProbe(1, std::nullopt);
  EXPECT_EQ(balancer.plan(3).size(), 2u) << "trying a down server beats failing at once";
}

TEST(UpstreamBalancerTest, LatencyIsSmoothed) {
  UpstreamBalancer balancer(servers(1));
  EXPECT_FALSE(balancer.states()[0].latency.has_value());
  balancer.onProbe(0, milliseconds(10));
  EXPECT_EQ(*balancer.states()[0].latency, milliseconds(10));
  balancer.onProbe(0, milliseconds(20));
  const auto latency = *balancer.states()[0].latency;
  EXPECT_GT(latency, milliseconds(10));
  EXPECT_LT(latency, milliseconds(20));
}

}  // namespace
}  // namespace shadowrelay::relay
