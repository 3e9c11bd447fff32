// SPDX-License-Identifier: Apache-2.0
#include "dns/lru.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace shadowrelay::dns {
namespace {

struct Item {
  int key = 0;
  std::string value;
};
using IntLru = Lru<&Item::key>;

std::vector<int> keysOldestFirst(const IntLru& lru) {
  std::vector<int> keys;
  lru.forEachOldestFirst([&](const Item& item) { keys.push_back(item.key); });
  return keys;
}

TEST(LruTest, FullEvictsTheLeastRecentlyUsed) {
  IntLru lru(3);
  for (int k = 1; k <= 3; ++k) lru.insert({k, "v"});
  ASSERT_NE(lru.find(1), nullptr);  // 2 is now the oldest
  lru.insert({4, "v"});
  EXPECT_EQ(lru.size(), 3u);
  EXPECT_EQ(lru.evictions(), 1u);
  EXPECT_EQ(lru.peek(2), nullptr);
  EXPECT_EQ(keysOldestFirst(lru), (std::vector<int>{3, 1, 4}));
}

TEST(LruTest, PeekKeepsTheOrder) {
  IntLru lru(2);
  lru.insert({1, "a"});
  lru.insert({2, "b"});
  ASSERT_NE(lru.peek(1), nullptr);
  EXPECT_EQ(lru.peek(1)->value, "a");
  lru.insert({3, "c"});  // 1 is still the oldest
  EXPECT_EQ(lru.peek(1), nullptr);
  EXPECT_EQ(keysOldestFirst(lru), (std::vector<int>{2, 3}));
}

TEST(LruTest, ReplacingAKeyMakesItNewestAndEvictsNothing) {
  IntLru lru(2);
  lru.insert({1, "a"});
  lru.insert({2, "b"});
  Item& replaced = lru.insert({1, "c"});
  EXPECT_EQ(replaced.value, "c");
  EXPECT_EQ(lru.size(), 2u);
  EXPECT_EQ(lru.evictions(), 0u);
  EXPECT_EQ(keysOldestFirst(lru), (std::vector<int>{2, 1}));
}

TEST(LruTest, StaysWithinItsCapacity) {
  IntLru lru(100);
  for (int k = 0; k < 1000; ++k) {
    lru.insert({k, std::to_string(k)});
    ASSERT_LE(lru.size(), 100u);
  }
  EXPECT_EQ(lru.evictions(), 900u);
  ASSERT_NE(lru.peek(999), nullptr);
  EXPECT_EQ(lru.peek(999)->value, "999");
  EXPECT_EQ(lru.peek(899), nullptr);
}

TEST(LruTest, ReferencesStayValidWhileOthersComeAndGo) {
  IntLru lru(10);
  Item& kept = lru.insert({-1, "kept"});
  for (int k = 0; k < 1000; ++k) {
    lru.insert({k, std::to_string(k)});
    ASSERT_EQ(lru.find(-1), &kept);  // also keeps it the newest
  }
  EXPECT_EQ(kept.value, "kept");
}

TEST(LruTest, EraseAndClear) {
  IntLru lru(4);
  lru.insert({1, "a"});
  lru.insert({2, "b"});
  EXPECT_TRUE(lru.erase(1));
  EXPECT_FALSE(lru.erase(1));
  EXPECT_EQ(lru.size(), 1u);
  lru.clear();
  EXPECT_TRUE(lru.empty());
  EXPECT_EQ(lru.find(2), nullptr);
  lru.insert({2, "again"});
  EXPECT_EQ(lru.find(2)->value, "again");
}

TEST(LruTest, ZeroCapacityHoldsOne) {
  IntLru lru(0);
  EXPECT_EQ(lru.capacity(), 1u);
  lru.insert({1, "a"});
  lru.insert({2, "b"});
  EXPECT_EQ(keysOldestFirst(lru), (std::vector<int>{2}));
}

TEST(LruTest, SweepVisitsOldestFirstAndStopsWhenTold) {
  IntLru lru(10);
  for (int k = 1; k <= 6; ++k) lru.insert({k, "v"});
  std::vector<int> visited;
  const size_t removed = lru.sweepOldest(100, [&](Item& item) {
    visited.push_back(item.key);
    if (item.key == 4) return IntLru::Sweep::Stop;
    return item.key % 2 == 1 ? IntLru::Sweep::Erase : IntLru::Sweep::Keep;
  });
  EXPECT_EQ(removed, 2u);
  EXPECT_EQ(visited, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(keysOldestFirst(lru), (std::vector<int>{2, 4, 5, 6}));
  EXPECT_EQ(lru.peek(1), nullptr);
  EXPECT_EQ(lru.peek(3), nullptr);
}

TEST(LruTest, SweepIsBounded) {
  IntLru lru(1000);
  for (int k = 0; k < 1000; ++k) lru.insert({k, ""});
  auto all = [](Item&) { return IntLru::Sweep::Erase; };
  EXPECT_EQ(lru.sweepOldest(100, all), 100u);
  EXPECT_EQ(lru.size(), 900u);
  EXPECT_EQ(lru.peek(99), nullptr);
  EXPECT_NE(lru.peek(100), nullptr);
}

struct Named {
  std::string name;
  int n = 0;
};

TEST(LruTest, StringKeysAreFoundByStringView) {
  Lru<&Named::name, absl::Hash<absl::string_view>> lru(2);
  lru.insert({"a-long-name-beyond-the-small-string-buffer.example.com", 1});
  const std::string probe = "a-long-name-beyond-the-small-string-buffer.example.com";
  Named* found = lru.find(absl::string_view(probe));
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->n, 1);
  EXPECT_TRUE(lru.erase(absl::string_view(probe)));
  EXPECT_EQ(lru.find(absl::string_view(probe)), nullptr);
}

TEST(LruTest, EvictedAndErasedElementsAreReleased) {
  struct Owned {
    int key = 0;
    std::shared_ptr<int> resource;
  };
  auto resource = std::make_shared<int>(1);
  std::weak_ptr<int> probe = resource;
  Lru<&Owned::key> lru(1);
  lru.insert({1, std::move(resource)});
  EXPECT_FALSE(probe.expired());
  lru.insert({2, nullptr});  // evicts key 1
  EXPECT_TRUE(probe.expired());
}

}  // namespace
}  // namespace shadowrelay::dns
