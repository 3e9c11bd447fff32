// SPDX-License-Identifier: Apache-2.0
#include "api/app/sample_hub.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shadowrelay::api::app {
using relay::WorkerSample;

namespace {

std::map<std::string, users::TrafficCounters> byName(
    const std::vector<users::TrafficDelta>& deltas) {
  std::map<std::string, users::TrafficCounters> out;
  for (const auto& d : deltas) out[d.name] = d.delta;
  return out;
}

WorkerSample withUser(const std::string& name, uint64_t up, uint64_t connections) {
  WorkerSample s;
  s.users[""].tcp_bytes_up = 1000;  // probes: never a user's traffic
  s.users[name].tcp_bytes_up = up;
  s.users[name].tcp_connections = connections;
  return s;
}

TEST(SampleHubTest, DeltasSumWorkersAndCountOnlyGrowth) {
  SampleHub hub(2, nullptr);
  hub.publish(0, withUser("alice", 100, 1));
  hub.publish(1, withUser("alice", 50, 2));
  auto first = byName(hub.takeTrafficDeltas());
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first["alice"].bytes_up, 150u);
  EXPECT_EQ(first["alice"].tcp_connections, 3u);
  EXPECT_TRUE(hub.takeTrafficDeltas().empty()) << "nothing grew";
  hub.publish(0, withUser("alice", 130, 1));
  auto second = byName(hub.takeTrafficDeltas());
  EXPECT_EQ(second["alice"].bytes_up, 30u);
  EXPECT_EQ(second["alice"].tcp_connections, 0u);
}

TEST(SampleHubTest, AUserDeletedAndCreatedAgainStartsFromZero) {
  SampleHub hub(1, nullptr);
  hub.publish(0, withUser("alice", 5000, 4));
  EXPECT_EQ(byName(hub.takeTrafficDeltas())["alice"].bytes_up, 5000u);
  // Deleted and created again between two registry ticks: the worker retired the old entry
  // and counts the new user from zero. The new user's traffic is all new, not an underflow.
  hub.publish(0, withUser("alice", 70, 1));
  auto again = byName(hub.takeTrafficDeltas());
  EXPECT_EQ(again["alice"].bytes_up, 70u);
  EXPECT_EQ(again["alice"].tcp_connections, 1u);
}

TEST(SampleHubTest, RetiredUsersAreForgotten) {
  SampleHub hub(1, nullptr);
  hub.publish(0, withUser("bob", 900, 2));
  EXPECT_EQ(byName(hub.takeTrafficDeltas())["bob"].bytes_up, 900u);
  WorkerSample without;  // bob deleted: the worker dropped his entry
  without.retired_users.tcp_bytes_up = 900;
  hub.publish(0, without);
  EXPECT_TRUE(hub.takeTrafficDeltas().empty());
  // bob again, with less traffic than before his deletion: counted whole.
  hub.publish(0, withUser("bob", 10, 1));
  auto back = byName(hub.takeTrafficDeltas());
  EXPECT_EQ(back["bob"].bytes_up, 10u);
  EXPECT_EQ(back["bob"].tcp_connections, 1u);
}

}  // namespace
}  // namespace shadowrelay::api::app
