// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/lru_table.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

using std::chrono::seconds;
using Table = LruTable<int, std::unique_ptr<std::string>>;

std::vector<int> keysOldestFirst(const Table& table) {
  std::vector<int> keys;
  table.forEachOldestFirst([&](const Table::Entry& e) { keys.push_back(e.key); });
  return keys;
}

TEST(LruTableTest, FullTableEvictsTheLeastRecentlyUsed) {
  Table table(3);
  const auto t0 = Table::Clock::now();
  for (int k = 1; k <= 3; ++k) table.insert(k, std::make_unique<std::string>("v"), t0, seconds(60));
  ASSERT_NE(table.touch(1, t0 + seconds(1)), nullptr);  // 2 is now the oldest
  table.insert(4, std::make_unique<std::string>("v"), t0 + seconds(2), seconds(60));
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(table.evictions(), 1u);
  EXPECT_EQ(table.peek(2), nullptr);
  EXPECT_EQ(keysOldestFirst(table), (std::vector<int>{3, 1, 4}));
}

TEST(LruTableTest, StaysWithinItsBoundUnderManyInserts) {
  Table table(100);
  const auto t0 = Table::Clock::now();
  for (int k = 0; k < 1000; ++k) {
    table.insert(k, std::make_unique<std::string>(std::to_string(k)), t0, seconds(60));
    ASSERT_LE(table.size(), 100u);
  }
  EXPECT_EQ(table.evictions(), 900u);
  ASSERT_NE(table.peek(999), nullptr);
  EXPECT_EQ(*table.peek(999)->value, "999");
  EXPECT_EQ(table.peek(899), nullptr);
}

TEST(LruTableTest, ReplacingAKeyDoesNotEvictOthers) {
  Table table(2);
  const auto t0 = Table::Clock::now();
  table.insert(1, std::make_unique<std::string>("a"), t0, seconds(60));
  table.insert(2, std::make_unique<std::string>("b"), t0, seconds(60));
  table.insert(1, std::make_unique<std::string>("c"), t0, seconds(60));
  EXPECT_EQ(table.size(), 2u);
  EXPECT_EQ(table.evictions(), 0u);
  EXPECT_EQ(*table.peek(1)->value, "c");
}

TEST(LruTableTest, EntriesExpireByTheirOwnIdleTimeout) {
  Table table(10);
  const auto t0 = Table::Clock::now();
  table.insert(53, std::make_unique<std::string>("dns"), t0, seconds(30));
  table.insert(443, std::make_unique<std::string>("quic"), t0, seconds(300));
  table.insert(80, std::make_unique<std::string>("late"), t0 + seconds(20), seconds(30));
  EXPECT_EQ(table.expire(t0 + seconds(29), seconds(30)), 0u);
  EXPECT_EQ(table.expire(t0 + seconds(31), seconds(30)), 1u);  // only the DNS entry
  EXPECT_EQ(table.peek(53), nullptr);
  EXPECT_NE(table.peek(443), nullptr);
  EXPECT_NE(table.peek(80), nullptr);
  // Touching keeps an entry alive.
  ASSERT_NE(table.touch(443, t0 + seconds(290)), nullptr);
  EXPECT_EQ(table.expire(t0 + seconds(400), seconds(30)), 1u);  // 80 goes, 443 was used
  EXPECT_NE(table.peek(443), nullptr);
  EXPECT_EQ(table.expirations(), 2u);
}

TEST(LruTableTest, ExpiryWalkIsBounded) {
  Table table(1000);
  const auto t0 = Table::Clock::now();
  for (int k = 0; k < 1000; ++k) table.insert(k, nullptr, t0, seconds(1));
  EXPECT_EQ(table.expire(t0 + seconds(5), seconds(1), 100), 100u);
  EXPECT_EQ(table.size(), 900u);
  EXPECT_EQ(table.expire(t0 + seconds(5), seconds(1)), 900u);
  EXPECT_EQ(table.size(), 0u);
}

TEST(LruTableTest, EvictedValueIsReleased) {
  std::weak_ptr<int> probe;
  {
    auto owned = std::make_shared<int>(1);
    probe = owned;
    LruTable<int, std::shared_ptr<int>> shared_table(1);
    const auto t0 = Table::Clock::now();
    shared_table.insert(1, std::move(owned), t0, seconds(1));
    EXPECT_FALSE(probe.expired());
    shared_table.insert(2, nullptr, t0, seconds(1));  // evicts key 1
    EXPECT_TRUE(probe.expired());
  }
}

}  // namespace
}  // namespace shadowrelay::relay
