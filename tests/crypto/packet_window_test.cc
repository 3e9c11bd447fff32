// SPDX-License-Identifier: Apache-2.0
#include "crypto/packet_window.h"

#include <cstdint>
#include <limits>
#include <random>
#include <set>

#include "gtest/gtest.h"

namespace shadowrelay::crypto {
namespace {

constexpr uint64_t kWindow = PacketIdWindow::kWindow;

TEST(PacketIdWindowTest, IsAtLeast1024Wide) { EXPECT_GE(kWindow, 1024u); }

TEST(PacketIdWindowTest, TakesIdsInOrderFromZeroOrOne) {
  for (uint64_t first : {0u, 1u}) {  // the spec starts at 0, shadowsocks-rust at 1
    PacketIdWindow window;
    for (uint64_t id = first; id < first + 10'000; ++id) {
      ASSERT_TRUE(window.accept(id)) << id;
    }
    EXPECT_EQ(window.highest(), first + 9'999);
  }
}

TEST(PacketIdWindowTest, RefusesEveryDuplicate) {
  PacketIdWindow window;
  for (uint64_t id = 0; id < 5'000; ++id) {
    ASSERT_TRUE(window.accept(id));
    ASSERT_FALSE(window.accept(id)) << id;  // at once
    if (id >= 100) {
      ASSERT_FALSE(window.accept(id - 100)) << id;  // a bit later
    }
  }
  EXPECT_FALSE(window.accept(0));
}

TEST(PacketIdWindowTest, TakesOutOfOrderIdsInsideTheWindowOnce) {
  PacketIdWindow window;
  ASSERT_TRUE(window.accept(kWindow + 500));
  // Everything the window still covers, newest to oldest, once each.
  for (uint64_t id = kWindow + 499; id > 500; --id) {
    ASSERT_TRUE(window.check(id)) << id;
    ASSERT_TRUE(window.accept(id)) << id;
    ASSERT_FALSE(window.accept(id)) << id;
  }
  EXPECT_EQ(window.highest(), kWindow + 500);
}

TEST(PacketIdWindowTest, RefusesIdsOlderThanTheWindow) {
  PacketIdWindow window;
  const uint64_t top = 10 * kWindow;
  ASSERT_TRUE(window.accept(top));
  EXPECT_TRUE(window.check(top - kWindow + 1));  // the oldest it still covers
  EXPECT_FALSE(window.check(top - kWindow));     // one older: refused, never seen or not
  EXPECT_FALSE(window.accept(top - kWindow));
  EXPECT_FALSE(window.accept(0));
  EXPECT_TRUE(window.accept(top - kWindow + 1));
}

TEST(PacketIdWindowTest, CheckChangesNothing) {
  PacketIdWindow window;
  EXPECT_TRUE(window.check(7));
  EXPECT_TRUE(window.check(7));
  ASSERT_TRUE(window.accept(7));
  EXPECT_FALSE(window.check(7));
  EXPECT_TRUE(window.check(6));
  EXPECT_TRUE(window.check(6));
  EXPECT_EQ(window.highest(), 7u);
}

TEST(PacketIdWindowTest, BigJumpsForgetWhatLeftTheWindow) {
  PacketIdWindow window;
  for (uint64_t id = 0; id < 64; ++id) ASSERT_TRUE(window.accept(id));
  // A jump of exactly the ring (the block of 1..63 comes round again): its stale bits must be
  // cleared, or these fresh IDs would be refused as replays.
  const uint64_t ring = PacketIdWindow::kBlocks * PacketIdWindow::kBlockBits;
  ASSERT_TRUE(window.accept(ring + 63));
  for (uint64_t id = ring; id < ring + 63; ++id) ASSERT_TRUE(window.accept(id)) << id;
  // A jump far ahead: everything before the window is refused, everything inside is new.
  const uint64_t far = uint64_t{1} << 40;
  ASSERT_TRUE(window.accept(far));
  EXPECT_FALSE(window.accept(ring + 10));
  for (uint64_t id = far - kWindow + 1; id < far; ++id) ASSERT_TRUE(window.accept(id)) << id;
  EXPECT_FALSE(window.accept(far));
}

TEST(PacketIdWindowTest, ReachesTheTopOfTheCounter) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  PacketIdWindow window;
  ASSERT_TRUE(window.accept(kMax - 2));
  ASSERT_TRUE(window.accept(kMax));
  EXPECT_TRUE(window.accept(kMax - 1));
  EXPECT_FALSE(window.accept(kMax));
  EXPECT_FALSE(window.accept(kMax - 2));
  EXPECT_FALSE(window.accept(0));  // no wrap-around back to the start
  EXPECT_TRUE(window.accept(kMax - kWindow + 1));
}

TEST(PacketIdWindowTest, MatchesAnExactSetOverARandomWalk) {
  // Shuffled IDs around a rising front, against the exact rule: refused iff seen or more than
  // kWindow - 1 below the highest accepted.
  std::mt19937_64 rng(2022);
  PacketIdWindow window;
  std::set<uint64_t> seen;
  uint64_t highest = 0;
  bool any = false;
  uint64_t front = 0;
  for (int i = 0; i < 200'000; ++i) {
    front += rng() % 3;
    if (rng() % 1000 == 0) front += rng() % (4 * kWindow);  // a burst lost in transit
    const uint64_t back = rng() % (kWindow + 200);
    const uint64_t id = front > back ? front - back : rng() % 8;
    const bool expected = !seen.contains(id) && (!any || id > highest || highest - id < kWindow);
    ASSERT_EQ(window.accept(id), expected) << "id " << id << " highest " << highest;
    if (expected) {
      seen.insert(id);
      if (!any || id > highest) highest = id;
      any = true;
    }
  }
}

}  // namespace
}  // namespace shadowrelay::crypto
