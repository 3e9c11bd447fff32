// SPDX-License-Identifier: Apache-2.0
#include "api/app/sample_hub.h"

#include <atomic>
#include <map>
#include <string>
#include <thread>
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

// The hub between threads, as the server runs it (and under ./dev test's TSan configuration):
// workers publish their growing counters from their own threads while the registry's tick takes
// deltas and the metrics and status paths read the gauges. Every byte is handed out exactly
// once, whatever the interleaving.
TEST(SampleHubTest, ConcurrentWorkersAndReadersLoseAndRepeatNothing) {
  constexpr size_t kWorkers = 4;
  constexpr uint64_t kRounds = 300;
  class CountingObserver final : public relay::RelayObserver {
   public:
    void publish(size_t, const WorkerSample&) override { ++samples; }
    std::atomic<uint64_t> samples{0};
  } next;
  SampleHub hub(kWorkers, &next);
  std::atomic<bool> publishing{true};
  std::map<std::string, users::TrafficCounters> taken;  // only the tick thread writes it
  std::thread tick([&] {
    const auto take = [&] {
      for (const auto& d : hub.takeTrafficDeltas()) taken[d.name] += d.delta;
    };
    while (publishing.load()) take();
    take();  // what the last samples added
  });
  std::thread gauges([&] {
    while (publishing.load()) {
      EXPECT_LE(hub.activeTcpSessions(), kWorkers * kRounds);
      EXPECT_LE(hub.udpAssociations(), kWorkers * kRounds);
    }
  });
  std::vector<std::thread> workers;
  for (size_t w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&hub, w] {
      WorkerSample s;  // cumulative, as a worker's counters are
      for (uint64_t i = 1; i <= kRounds; ++i) {
        s.users["alice"].tcp_bytes_up += 10;
        s.users["bob"].tcp_bytes_up += w + 1;
        s.users["bob"].tcp_connections = i;
        s.tcp_active = i;
        s.udp_associations_active = i;
        hub.publish(w, s);
      }
    });
  }
  for (auto& t : workers) t.join();
  publishing.store(false);
  tick.join();
  gauges.join();
  EXPECT_EQ(next.samples.load(), kWorkers * kRounds);
  EXPECT_EQ(taken["alice"].bytes_up, kWorkers * kRounds * 10);
  EXPECT_EQ(taken["bob"].bytes_up, kRounds * (1 + 2 + 3 + 4));
  EXPECT_EQ(taken["bob"].tcp_connections, kWorkers * kRounds);
  EXPECT_EQ(hub.activeTcpSessions(), kWorkers * kRounds);
}

}  // namespace
}  // namespace shadowrelay::api::app
