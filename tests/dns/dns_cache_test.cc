// SPDX-License-Identifier: Apache-2.0
#include "dns/dns_cache.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace shadowrelay::dns {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = DnsCache::Clock;

const IpAddress kA = IpAddress::v4({10, 0, 0, 1});
const IpAddress kB = IpAddress::v4({10, 0, 0, 2});

DnsCache::Options smallOptions() {
  DnsCache::Options o;
  o.capacity = 3;
  o.shards = 1;
  o.min_ttl = seconds(2);
  o.max_ttl = seconds(60);
  o.negative_ttl = seconds(5);
  return o;
}

TEST(DnsCacheTest, ReturnsFreshEntryUntilTtl) {
  DnsCache cache(smallOptions());
  const Clock::time_point t0 = Clock::now();
  cache.insert("a.test", ResolveStatus::Ok, {kA, kB}, seconds(10), t0);
  std::optional<DnsCache::Entry> e = cache.find("a.test", t0 + seconds(9));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->status, ResolveStatus::Ok);
  EXPECT_EQ(e->addresses, (std::vector<IpAddress>{kA, kB}));
  EXPECT_EQ(e->expires_at, t0 + seconds(10));
  EXPECT_FALSE(cache.find("a.test", t0 + seconds(10)).has_value());
  EXPECT_EQ(cache.size(), 0u) << "an expired entry is removed when found";
}

TEST(DnsCacheTest, ClampsTtlToMinAndMax) {
  DnsCache cache(smallOptions());
  const Clock::time_point t0 = Clock::now();
  cache.insert("zero.test", ResolveStatus::Ok, {kA}, seconds(0), t0);
  cache.insert("huge.test", ResolveStatus::Ok, {kA}, seconds(86400), t0);
  EXPECT_EQ(cache.find("zero.test", t0)->expires_at, t0 + seconds(2));
  EXPECT_EQ(cache.find("huge.test", t0)->expires_at, t0 + seconds(60));
}

TEST(DnsCacheTest, CachesNegativeAnswersForNegativeTtl) {
  DnsCache cache(smallOptions());
  const Clock::time_point t0 = Clock::now();
  cache.insert("nx.test", ResolveStatus::NxDomain, {}, seconds(3600), t0);
  cache.insert("nodata.test", ResolveStatus::NoData, {kA}, seconds(3600), t0);
  std::optional<DnsCache::Entry> nx = cache.find("nx.test", t0 + seconds(4));
  ASSERT_TRUE(nx.has_value());
  EXPECT_EQ(nx->status, ResolveStatus::NxDomain);
  EXPECT_EQ(cache.find("nodata.test", t0)->status, ResolveStatus::NoData);
  EXPECT_TRUE(cache.find("nodata.test", t0)->addresses.empty());
  EXPECT_FALSE(cache.find("nx.test", t0 + seconds(5)).has_value());
}

TEST(DnsCacheTest, DoesNotCacheTransientFailures) {
  DnsCache cache(smallOptions());
  const Clock::time_point t0 = Clock::now();
  for (ResolveStatus s : {ResolveStatus::Timeout, ResolveStatus::ServerFailure,
                          ResolveStatus::Cancelled, ResolveStatus::Internal,
                          ResolveStatus::InvalidName}) {
    cache.insert("x.test", s, {}, seconds(30), t0);
  }
  cache.insert("empty.test", ResolveStatus::Ok, {}, seconds(30), t0);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(DnsCacheTest, EvictsLeastRecentlyUsedAtCapacity) {
  DnsCache cache(smallOptions());
  const Clock::time_point t0 = Clock::now();
  cache.insert("a", ResolveStatus::Ok, {kA}, seconds(30), t0);
  cache.insert("b", ResolveStatus::Ok, {kA}, seconds(30), t0);
  cache.insert("c", ResolveStatus::Ok, {kA}, seconds(30), t0);
  ASSERT_TRUE(cache.find("a", t0).has_value());  // a is now the most recently used.
  cache.insert("d", ResolveStatus::Ok, {kA}, seconds(30), t0);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.find("b", t0).has_value());
  EXPECT_TRUE(cache.find("a", t0).has_value());
  EXPECT_TRUE(cache.find("c", t0).has_value());
  EXPECT_TRUE(cache.find("d", t0).has_value());
}

TEST(DnsCacheTest, ReplacingAnEntryDoesNotGrowTheCache) {
  DnsCache cache(smallOptions());
  const Clock::time_point t0 = Clock::now();
  cache.insert("a", ResolveStatus::Ok, {kA}, seconds(30), t0);
  cache.insert("a", ResolveStatus::Ok, {kB}, seconds(30), t0);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find("a", t0)->addresses, std::vector<IpAddress>{kB});
  cache.erase("a");
  EXPECT_EQ(cache.size(), 0u);
}

TEST(DnsCacheTest, ShardedCacheNeverExceedsCapacity) {
  DnsCache::Options o = smallOptions();
  o.capacity = 100;
  o.shards = 7;
  DnsCache cache(o);
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < 1000; ++i) {
    cache.insert(absl::StrCat("host", i, ".test"), ResolveStatus::Ok, {kA}, seconds(30), t0);
    ASSERT_LE(cache.size(), 100u);
  }
  EXPECT_GE(cache.size(), 90u) << "names spread over the shards";
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
}

TEST(DnsCacheTest, ZeroCapacityDisablesCaching) {
  DnsCache::Options o = smallOptions();
  o.capacity = 0;
  DnsCache cache(o);
  cache.insert("a", ResolveStatus::Ok, {kA}, seconds(30), Clock::now());
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_FALSE(cache.find("a", Clock::now()).has_value());
}

TEST(DnsCacheTest, ConcurrentUseFromSeveralThreads) {
  DnsCache::Options o = smallOptions();
  o.capacity = 64;
  o.shards = 4;
  DnsCache cache(o);
  const Clock::time_point t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t, t0] {
      for (int i = 0; i < 5000; ++i) {
        const std::string name = absl::StrCat("h", (i * 7 + t) % 100);
        if (i % 3 == 0) {
          cache.insert(name, ResolveStatus::Ok, {kA}, seconds(30), t0);
        } else if (auto e = cache.find(name, t0)) {
          ASSERT_EQ(e->addresses.size(), 1u);
        }
      }
    });
  }
  for (std::thread& th : threads) {
    th.join();
  }
  EXPECT_LE(cache.size(), 64u);
}

}  // namespace
}  // namespace shadowrelay::dns
