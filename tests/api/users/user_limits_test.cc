// SPDX-License-Identifier: Apache-2.0
// Issue 18 in the registry, with an injected clock: expire_time, expire_after_first_use, quota
// periods (daily, weekly, monthly at 00:00 UTC), --max-users, User.state, and a store written
// before these fields (testdata/store_before_issue18.json, written by the server of commit
// 8f60e6a) loading unchanged.
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "api/users/user_registry.h"
#include "api/users/user_store.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::api::users {
namespace {

using shadowrelay::testing::TempDir;

absl::Time utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

/// A clock the test moves by hand.
struct Clock {
  absl::Time now;
};

RegistryOptions options(const std::string& state_dir, std::shared_ptr<Clock> clock) {
  RegistryOptions o;
  o.state_dir = state_dir;
  o.default_method = "aes-128-gcm";
  o.shared_port = 8388;
  o.now = [clock] { return clock->now; };
  return o;
}

std::unique_ptr<UserRegistry> openRegistry(RegistryOptions o) {
  auto r = UserRegistry::open(std::move(o));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : nullptr;
}

/// Every table the registry publishes, newest last.
struct Tables {
  std::vector<relay::UserTablePtr> seen;
  explicit Tables(UserRegistry& r) {
    r.subscribe([this](const relay::UserTablePtr& t) { seen.push_back(t); });
  }
  const relay::RelayUser& user(const std::string& name) const { return *seen.back()->find(name); }
};

NewUser named(const std::string& name) {
  NewUser n;
  n.name = name;
  return n;
}

TrafficCounters bytesAndConnection(uint64_t down) { return TrafficCounters{0, down, 1, 0}; }

TEST(QuotaPeriodTest, BoundariesAreMidnightUtcMondayAndTheFirstOfTheMonth) {
  // 2026-12-07 is a Monday.
  const absl::Time sunday_late = utc(2026, 12, 13, 23, 59, 59);
  EXPECT_EQ(periodStart(QuotaPeriod::Daily, sunday_late), utc(2026, 12, 13));
  EXPECT_EQ(periodStart(QuotaPeriod::Weekly, sunday_late), utc(2026, 12, 7));
  EXPECT_EQ(nextPeriodStart(QuotaPeriod::Weekly, utc(2026, 12, 7)), utc(2026, 12, 14));
  EXPECT_EQ(periodStart(QuotaPeriod::Weekly, utc(2026, 12, 14)), utc(2026, 12, 14));
  EXPECT_EQ(periodStart(QuotaPeriod::Weekly, utc(2026, 12, 14) - absl::Nanoseconds(1)),
            utc(2026, 12, 7));
  EXPECT_EQ(periodStart(QuotaPeriod::Monthly, utc(2026, 12, 31, 23)), utc(2026, 12, 1));
  EXPECT_EQ(nextPeriodStart(QuotaPeriod::Monthly, utc(2026, 12, 1)), utc(2027, 1, 1));
  EXPECT_EQ(nextPeriodStart(QuotaPeriod::Monthly, utc(2028, 2, 1)), utc(2028, 3, 1));
  EXPECT_EQ(nextPeriodStart(QuotaPeriod::Daily, utc(2028, 2, 28)), utc(2028, 2, 29));
  EXPECT_EQ(periodStart(QuotaPeriod::None, sunday_late), absl::InfinitePast());
  EXPECT_EQ(nextPeriodStart(QuotaPeriod::None, sunday_late), absl::InfiniteFuture());
  for (QuotaPeriod p :
       {QuotaPeriod::None, QuotaPeriod::Daily, QuotaPeriod::Weekly, QuotaPeriod::Monthly}) {
    EXPECT_EQ(*parseQuotaPeriod(quotaPeriodName(p)), p);
  }
  EXPECT_FALSE(parseQuotaPeriod("hourly").ok());
}

TEST(UserLimitsTest, ExpireTimeCutsAndRefusesAtTheDeadlineAndUpdateBringsTheUserBack) {
  TempDir dir;
  auto clock = std::make_shared<Clock>(Clock{utc(2026, 12, 7, 12)});
  auto r = openRegistry(options(dir.path(), clock));
  Tables tables(*r);
  NewUser eve = named("eve");
  eve.expire_time = clock->now + absl::Seconds(10);
  ASSERT_TRUE(r->create(eve).ok());
  ASSERT_TRUE(r->create(named("frank")).ok());
  EXPECT_EQ(r->nextDeadline(), clock->now + absl::Seconds(10));
  const relay::RelayUser before = tables.user("eve");
  EXPECT_FALSE(before.expired);
  EXPECT_EQ(stateOf(*r->get("eve"), r->now()), UserState::Active);

  // Early: nothing happens.
  const size_t published = tables.seen.size();
  clock->now += absl::Seconds(9);
  r->tick();
  EXPECT_EQ(tables.seen.size(), published);

  clock->now += absl::Seconds(1);
  r->tick();
  ASSERT_EQ(tables.seen.size(), published + 1);
  EXPECT_TRUE(tables.user("eve").expired);               // identified, then refused
  EXPECT_FALSE(tables.seen.back()->keeps(before));        // its sessions are cut
  EXPECT_FALSE(tables.seen.back()->onPort(0).empty());    // still a candidate
  EXPECT_FALSE(tables.user("frank").expired);
  EXPECT_EQ(stateOf(*r->get("eve"), r->now()), UserState::Expired);
  auto counts = r->countByState();
  EXPECT_EQ(counts[static_cast<size_t>(UserState::Expired)], 1u);
  EXPECT_EQ(counts[static_cast<size_t>(UserState::Active)], 1u);
  EXPECT_EQ(r->nextDeadline(), absl::InfiniteFuture());

  // A later expire_time brings eve back; clearing it means never.
  UserUpdate later;
  later.expire_time = std::optional<absl::Time>(clock->now + absl::Hours(1));
  ASSERT_TRUE(r->update("eve", later).ok());
  EXPECT_FALSE(tables.user("eve").expired);
  EXPECT_TRUE(tables.seen.back()->keeps(before));
  EXPECT_EQ(r->nextDeadline(), clock->now + absl::Hours(1));
  UserUpdate never;
  never.expire_time = std::optional<absl::Time>();
  auto updated = r->update("eve", never);
  ASSERT_TRUE(updated.ok());
  EXPECT_FALSE(updated->expire_time.has_value());
  EXPECT_EQ(r->nextDeadline(), absl::InfiniteFuture());

  // Disabled wins over expired.
  UserUpdate past;
  past.expire_time = std::optional<absl::Time>(clock->now - absl::Seconds(1));
  past.enabled = false;
  ASSERT_TRUE(r->update("eve", past).ok());
  EXPECT_EQ(stateOf(*r->get("eve"), r->now()), UserState::Disabled);
}

TEST(UserLimitsTest, ExpireAfterFirstUseRunsFromTheFirstReportedConnectionAndIsKept) {
  TempDir dir;
  auto clock = std::make_shared<Clock>(Clock{utc(2026, 12, 7, 12)});
  {
    auto r = openRegistry(options(dir.path(), clock));
    Tables tables(*r);
    NewUser gus = named("gus");
    gus.limits.expire_after_first_use = absl::Minutes(30);
    ASSERT_TRUE(r->create(gus).ok());
    // Unused: no deadline, however long it waits.
    clock->now += absl::Hours(5);
    EXPECT_EQ(r->nextDeadline(), absl::InfiniteFuture());
    r->addTraffic("gus", TrafficCounters{});  // an empty report is no use
    EXPECT_FALSE(r->get("gus")->first_use.has_value());

    const absl::Time first = clock->now;
    r->addTraffic("gus", bytesAndConnection(100));
    EXPECT_EQ(r->get("gus")->first_use, first);
    EXPECT_EQ(r->nextDeadline(), first + absl::Minutes(30));
    clock->now += absl::Minutes(10);
    r->addTraffic("gus", bytesAndConnection(100));
    EXPECT_EQ(r->get("gus")->first_use, first);  // the first one stays
  }
  // Kept across a restart (written when it was learnt).
  {
    auto r = openRegistry(options(dir.path(), clock));
    Tables tables(*r);
    const absl::Time first = *r->get("gus")->first_use;
    EXPECT_EQ(r->nextDeadline(), first + absl::Minutes(30));
    EXPECT_FALSE(tables.user("gus").expired);
    clock->now = first + absl::Minutes(30);
    r->tick();
    EXPECT_TRUE(tables.user("gus").expired);
    EXPECT_EQ(stateOf(*r->get("gus"), r->now()), UserState::Expired);
    // Now a new expire_time does not help: the earlier of the two applies.
    UserUpdate later;
    later.expire_time = std::optional<absl::Time>(clock->now + absl::Hours(1));
    ASSERT_TRUE(r->update("gus", later).ok());
    EXPECT_TRUE(tables.user("gus").expired);
    // Lifting expire_after_first_use does.
    UserUpdate lift;
    lift.expire_after_first_use = absl::ZeroDuration();
    ASSERT_TRUE(r->update("gus", lift).ok());
    EXPECT_FALSE(tables.user("gus").expired);
  }
}

TEST(UserLimitsTest, DailyQuotaRecoversAtMidnightUtcAndTheCountIsKeptAcrossRestarts) {
  TempDir dir;
  auto clock = std::make_shared<Clock>(Clock{utc(2026, 12, 7, 23, 59, 50)});
  {
    auto r = openRegistry(options(dir.path(), clock));
    Tables tables(*r);
    NewUser hal = named("hal");
    hal.limits.data_quota_bytes = 1000;
    hal.limits.data_quota_period = QuotaPeriod::Daily;
    ASSERT_TRUE(r->create(hal).ok());
    EXPECT_EQ(r->get("hal")->quotaResetTime(), utc(2026, 12, 8));
    EXPECT_EQ(r->nextDeadline(), utc(2026, 12, 8));
    r->addTraffic("hal", bytesAndConnection(600));
    EXPECT_FALSE(tables.user("hal").quota_exceeded);
    r->addTraffic("hal", bytesAndConnection(600));
    EXPECT_TRUE(tables.user("hal").quota_exceeded);
    EXPECT_EQ(stateOf(*r->get("hal"), r->now()), UserState::OverQuota);
    EXPECT_EQ(r->get("hal")->quotaUsedBytes(), 1200u);

    clock->now = utc(2026, 12, 8);
    r->tick();
    EXPECT_FALSE(tables.user("hal").quota_exceeded);  // works again
    const User after = *r->get("hal");
    EXPECT_EQ(after.quotaUsedBytes(), 0u);
    EXPECT_EQ(after.traffic.totalBytes(), 1200u);  // the counters since creation stay
    EXPECT_EQ(after.quotaResetTime(), utc(2026, 12, 9));
    EXPECT_EQ(r->nextDeadline(), utc(2026, 12, 9));
    r->addTraffic("hal", bytesAndConnection(300));
    ASSERT_TRUE(r->flush().ok());
  }
  // A restart the same day keeps the day's count.
  {
    clock->now = utc(2026, 12, 8, 18);
    auto r = openRegistry(options(dir.path(), clock));
    EXPECT_EQ(r->get("hal")->quotaUsedBytes(), 300u);
    r->addTraffic("hal", bytesAndConnection(800));
    EXPECT_TRUE(r->get("hal")->quotaExceeded());
    ASSERT_TRUE(r->flush().ok());
  }
  // A restart after midnight starts the new day at once.
  {
    clock->now = utc(2026, 12, 9, 0, 0, 5);
    auto r = openRegistry(options(dir.path(), clock));
    Tables tables(*r);
    EXPECT_EQ(r->get("hal")->quotaUsedBytes(), 0u);
    EXPECT_FALSE(tables.user("hal").quota_exceeded);
    EXPECT_EQ(r->get("hal")->quotaResetTime(), utc(2026, 12, 10));
  }
}

TEST(UserLimitsTest, WeeklyAndMonthlyPeriodsAndSwitchingPeriods) {
  auto clock = std::make_shared<Clock>(Clock{utc(2026, 12, 13, 22)});  // a Sunday
  auto r = openRegistry(options("", clock));
  Tables tables(*r);
  NewUser ivy = named("ivy");
  ivy.limits.data_quota_bytes = 100;
  ivy.limits.data_quota_period = QuotaPeriod::Weekly;
  ASSERT_TRUE(r->create(ivy).ok());
  NewUser jo = named("jo");
  jo.limits.data_quota_bytes = 100;
  jo.limits.data_quota_period = QuotaPeriod::Monthly;
  ASSERT_TRUE(r->create(jo).ok());
  EXPECT_EQ(r->get("ivy")->quotaResetTime(), utc(2026, 12, 14));
  EXPECT_EQ(r->get("jo")->quotaResetTime(), utc(2027, 1, 1));
  r->addTraffic("ivy", bytesAndConnection(150));
  r->addTraffic("jo", bytesAndConnection(150));
  EXPECT_TRUE(tables.user("ivy").quota_exceeded);
  EXPECT_TRUE(tables.user("jo").quota_exceeded);
  EXPECT_EQ(r->nextDeadline(), utc(2026, 12, 14));

  clock->now = utc(2026, 12, 14, 0, 0, 1);  // Monday
  r->tick();
  EXPECT_FALSE(tables.user("ivy").quota_exceeded);
  EXPECT_TRUE(tables.user("jo").quota_exceeded);
  EXPECT_EQ(r->nextDeadline(), utc(2026, 12, 21));

  clock->now = utc(2027, 1, 1, 0, 0, 1);  // weeks later: both roll over once
  r->tick();
  EXPECT_FALSE(tables.user("jo").quota_exceeded);
  EXPECT_EQ(r->get("jo")->quotaResetTime(), utc(2027, 2, 1));
  EXPECT_EQ(r->get("ivy")->quotaResetTime(), utc(2027, 1, 4));

  // Back to NONE: the quota counts since creation again (300 bytes > 100).
  r->addTraffic("jo", bytesAndConnection(50));
  UserUpdate none;
  none.data_quota_period = QuotaPeriod::None;
  auto updated = r->update("jo", none);
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->quotaUsedBytes(), 200u);
  EXPECT_TRUE(tables.user("jo").quota_exceeded);
  EXPECT_EQ(updated->quotaResetTime(), absl::InfiniteFuture());
  // And a period set later counts from then.
  UserUpdate daily;
  daily.data_quota_period = QuotaPeriod::Daily;
  updated = r->update("jo", daily);
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->quotaUsedBytes(), 0u);
  EXPECT_FALSE(tables.user("jo").quota_exceeded);
}

TEST(UserLimitsTest, MaxUsersCountsConfiguredUsersAndAnswersResourceExhausted) {
  auto clock = std::make_shared<Clock>(Clock{utc(2026, 12, 7)});
  RegistryOptions o = options("", clock);
  User cfg;
  cfg.name = "cfg";
  cfg.method = "aes-256-gcm";
  cfg.password = "configured";
  cfg.source = UserSource::Config;
  o.configured_users = {cfg};
  o.max_users = 3;
  auto r = openRegistry(std::move(o));
  ASSERT_TRUE(r->create(named("a")).ok());
  ASSERT_TRUE(r->create(named("b")).ok());
  auto refused = r->create(named("c"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_NE(refused.status().message().find("--max-users 3"), std::string::npos);
  EXPECT_EQ(r->size(), 3u);
  ASSERT_TRUE(r->remove("a").ok());
  EXPECT_TRUE(r->create(named("c")).ok());
}

TEST(UserLimitsTest, NewFieldsRoundTripThroughTheStoreAndAreAbsentWhenUnset) {
  User u;
  u.name = "kim";
  u.method = "aes-256-gcm";
  u.password = "pw";
  u.created = utc(2026, 1, 2, 3, 4, 5);
  u.traffic = TrafficCounters{10, 20, 1, 0};
  StoreContents plain;
  plain.users = {u};
  auto plain_text = encodeStore(plain);
  ASSERT_TRUE(plain_text.ok());
  for (const char* field : {"expire_time", "first_use", "quota_period_start", "quota_base_bytes",
                            "expire_after_first_use", "data_quota_period"}) {
    EXPECT_EQ(plain_text->find(field), std::string::npos) << field;
  }
  u.expire_time = utc(2027, 1, 1);
  u.first_use = utc(2026, 1, 3) + absl::Milliseconds(250);
  u.limits.expire_after_first_use = absl::Hours(24 * 30);
  u.limits.data_quota_bytes = 1000;
  u.limits.data_quota_period = QuotaPeriod::Monthly;
  u.quota_period_start = utc(2026, 1, 1);
  u.quota_base_bytes = 25;
  StoreContents full;
  full.users = {u};
  auto text = encodeStore(full);
  ASSERT_TRUE(text.ok());
  auto back = decodeStore(*text);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->users.size(), 1u);
  EXPECT_EQ(back->users[0], u);
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(UserLimitsTest, AStoreWrittenBeforeTheseFieldsLoadsAndKeepsItsUsers) {
  const std::string old_text = readText("tests/api/users/testdata/store_before_issue18.json");
  ASSERT_FALSE(old_text.empty());
  TempDir dir;
  {
    std::ofstream out(dir.path() + "/users.json");
    out << old_text;
  }
  std::filesystem::permissions(dir.path() + "/users.json", std::filesystem::perms::owner_read |
                                                                std::filesystem::perms::owner_write);
  auto clock = std::make_shared<Clock>(Clock{utc(2026, 12, 8)});
  {
    auto r = openRegistry(options(dir.path(), clock));
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(r->size(), 3u);
    const User alice = *r->get("alice");
    EXPECT_EQ(alice.method, "aes-256-gcm");
    EXPECT_EQ(alice.password, "alice-legacy-password");
    EXPECT_EQ(alice.limits.max_connections, 3u);
    EXPECT_EQ(alice.limits.data_quota_bytes, 10485760u);
    EXPECT_EQ(alice.limits.data_quota_period, QuotaPeriod::None);
    EXPECT_EQ(alice.traffic, (TrafficCounters{83, 200204, 1, 0}));
    EXPECT_EQ(alice.quotaUsedBytes(), 200287u);  // since creation, as before
    EXPECT_FALSE(alice.expire_time.has_value());
    EXPECT_FALSE(alice.first_use.has_value());  // used before first_use was kept: stays unset
    EXPECT_EQ(stateOf(alice, r->now()), UserState::Active);
    EXPECT_EQ(stateOf(*r->get("bob"), r->now()), UserState::Disabled);
    EXPECT_FALSE(r->get("bob")->key.empty());
    const User carol = *r->get("carol");
    EXPECT_EQ(carol.port, 18790);
    EXPECT_EQ(carol.method, "2022-blake3-aes-128-gcm");
    EXPECT_EQ(r->nextDeadline(), absl::InfiniteFuture());
    // Written back by the new code (a change), then read again.
    UserUpdate expire;
    expire.expire_time = std::optional<absl::Time>(utc(2027, 1, 1));
    ASSERT_TRUE(r->update("alice", expire).ok());
  }
  auto r = openRegistry(options(dir.path(), clock));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->size(), 3u);
  EXPECT_EQ(r->get("alice")->expire_time, utc(2027, 1, 1));
  EXPECT_EQ(r->get("alice")->traffic.totalBytes(), 200287u);
  // The older generation is the file as it was.
  EXPECT_EQ(readText(dir.path() + "/users.json.prev"), old_text);
}

}  // namespace
}  // namespace shadowrelay::api::users
