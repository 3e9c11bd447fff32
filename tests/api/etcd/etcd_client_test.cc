// SPDX-License-Identifier: Apache-2.0
// EtcdClient against a real 3-member etcd 3.4 on loopback: KV, transactions, paged ranges,
// watches, compaction, leases, Status. The cluster stays up for the whole suite; each test
// works under a key prefix of its own. Faults: etcd_failover_test; auth and TLS:
// etcd_auth_tls_test.
#include "api/etcd/etcd_client.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/api/etcd/watch_recorder.h"
#include "tests/testing/etcd_cluster.h"

namespace shadowrelay::api::etcd {
namespace {

using shadowrelay::testing::EtcdCluster;
using testing::CallCounter;
using testing::WatchRecorder;

constexpr absl::Duration kWait = absl::Seconds(10);

class EtcdClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EtcdCluster::Options options;
    // Progress notifications every second (the default is 10 minutes).
    options.extra_flags = {"--experimental-watch-progress-notify-interval=1s"};
    auto started = EtcdCluster::start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    cluster_ = started->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    client_ = makeClient(cluster_->endpoints());
    ASSERT_NE(client_, nullptr);
    prefix_ = absl::StrCat("/test/", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                           "/");
  }

  std::unique_ptr<EtcdClient> makeClient(std::vector<std::string> endpoints) {
    EtcdOptions options;
    options.endpoints = std::move(endpoints);
    options.observer = calls_.observer();
    auto client = EtcdClient::create(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  std::string key(absl::string_view name) const { return absl::StrCat(prefix_, name); }

  static EtcdCluster* cluster_;
  CallCounter calls_;
  std::unique_ptr<EtcdClient> client_;
  std::string prefix_;
};

EtcdCluster* EtcdClientTest::cluster_ = nullptr;

Op put(std::string key, std::string value, int64_t lease = 0) {
  Op op;
  op.kind = Op::Kind::Put;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}

Op opOf(Op::Kind kind, std::string key) {
  Op op;
  op.kind = kind;
  op.key = std::move(key);
  return op;
}

Compare compare(std::string key, Compare::Target target, int64_t number) {
  Compare c;
  c.key = std::move(key);
  c.target = target;
  c.result = Compare::Result::Equal;
  c.number = number;
  return c;
}

TEST(PrefixEndTest, IncrementsTheLastByteThatCan) {
  EXPECT_EQ(prefixEnd("/shadowrelay/users/"), "/shadowrelay/users0");
  EXPECT_EQ(prefixEnd("a"), "b");
  EXPECT_EQ(prefixEnd(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(prefixEnd(std::string("\xff", 1)), std::string(1, '\0'));
  EXPECT_EQ(prefixEnd(""), std::string(1, '\0'));
}

TEST(EtcdClientCreateTest, RefusesBadOptions) {
  EtcdOptions none;
  EXPECT_EQ(EtcdClient::create(none).status().code(), absl::StatusCode::kInvalidArgument);
  EtcdOptions bad_url;
  bad_url.endpoints = {"127.0.0.1:2379"};
  absl::Status status = EtcdClient::create(bad_url).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("127.0.0.1:2379"), absl::string_view::npos) << status;
  EtcdOptions half_cert;
  half_cert.endpoints = {"https://127.0.0.1:2379"};
  half_cert.cert_file = "/nonexistent.crt";
  EXPECT_EQ(EtcdClient::create(half_cert).status().code(), absl::StatusCode::kInvalidArgument);
  EtcdOptions missing_ca;
  missing_ca.endpoints = {"https://127.0.0.1:2379"};
  missing_ca.ca_file = "/nonexistent/ca.pem";
  status = EtcdClient::create(missing_ca).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("ca_file"), absl::string_view::npos) << status;
  // No etcd needed to create a client: a replica starts while etcd is down.
  EtcdOptions down;
  down.endpoints = {"http://127.0.0.1:1"};
  EXPECT_TRUE(EtcdClient::create(down).ok());
}

TEST_F(EtcdClientTest, PutGetAndRevisions) {
  auto first = client_->put(key("a"), "1");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = client_->put(key("a"), "2");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT(*second, *first);
  auto got = client_->get(key("a"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "2");
  EXPECT_EQ(got->kvs[0].create_revision, *first);
  EXPECT_EQ(got->kvs[0].mod_revision, *second);
  EXPECT_EQ(got->kvs[0].version, 2);
  EXPECT_GE(got->revision, *second);
  auto absent = client_->get(key("absent"), /*serializable=*/true);
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_TRUE(absent->kvs.empty());
  EXPECT_GE(calls_.count("put", absl::StatusCode::kOk), 2);
  EXPECT_GE(calls_.count("range", absl::StatusCode::kOk), 2);
}

TEST_F(EtcdClientTest, TwentyConcurrentCreatorsExactlyOneWins) {
  // Three clients, each starting on another member, twenty threads.
  std::vector<std::unique_ptr<EtcdClient>> clients;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> endpoints = cluster_->endpoints();
    std::rotate(endpoints.begin(), endpoints.begin() + i, endpoints.end());
    clients.push_back(makeClient(endpoints));
    ASSERT_NE(clients.back(), nullptr);
  }
  const std::string name = key("users/alice");
  std::atomic<int> go{0};
  std::vector<absl::StatusOr<TxnResult>> results(20, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      while (go.load() == 0) {
        std::this_thread::yield();
      }
      results[i] = clients[i % 3]->txn({compare(name, Compare::Target::Create, 0)},
                                       {put(name, absl::StrCat("creator-", i))},
                                       {opOf(Op::Kind::Get, name)});
    });
  }
  go.store(1);
  for (std::thread& t : threads) {
    t.join();
  }
  int winners = 0;
  std::string winner;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    if (results[i]->succeeded) {
      ++winners;
      winner = absl::StrCat("creator-", i);
      EXPECT_TRUE(results[i]->gets.empty());  // the success branch has no Get
    }
  }
  ASSERT_EQ(winners, 1);
  for (int i = 0; i < 20; ++i) {
    if (!results[i]->succeeded) {
      // The failure branch's Get shows the winner's value: ALREADY_EXISTS in one round trip.
      ASSERT_EQ(results[i]->gets.size(), 1u);
      ASSERT_EQ(results[i]->gets[0].size(), 1u);
      EXPECT_EQ(results[i]->gets[0][0].value, winner);
    }
  }
  auto stored = client_->get(name);
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->kvs.size(), 1u);
  EXPECT_EQ(stored->kvs[0].value, winner);
  EXPECT_EQ(stored->kvs[0].version, 1);
}

TEST_F(EtcdClientTest, CompareAndSwapOnModRevision) {
  ASSERT_TRUE(client_->put(key("defaults"), "v1").ok());
  auto read = client_->get(key("defaults"));
  ASSERT_TRUE(read.ok());
  const int64_t seen = read->kvs.at(0).mod_revision;
  auto swapped = client_->txn({compare(key("defaults"), Compare::Target::Mod, seen)},
                              {put(key("defaults"), "v2")}, {opOf(Op::Kind::Get, key("defaults"))});
  ASSERT_TRUE(swapped.ok()) << swapped.status();
  EXPECT_TRUE(swapped->succeeded);
  EXPECT_GT(swapped->revision, seen);
  // The same stale revision again: refused, and the failure branch shows what is there now.
  auto stale = client_->txn({compare(key("defaults"), Compare::Target::Mod, seen)},
                            {put(key("defaults"), "v3")}, {opOf(Op::Kind::Get, key("defaults"))});
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_FALSE(stale->succeeded);
  ASSERT_EQ(stale->gets.size(), 1u);
  ASSERT_EQ(stale->gets[0].size(), 1u);
  EXPECT_EQ(stale->gets[0][0].value, "v2");
  EXPECT_EQ(stale->gets[0][0].mod_revision, swapped->revision);
  // Value and Version compares, ANDed.
  Compare value_is_v2;
  value_is_v2.key = key("defaults");
  value_is_v2.target = Compare::Target::Value;
  value_is_v2.value = "v2";
  auto both = client_->txn({value_is_v2, compare(key("defaults"), Compare::Target::Version, 2)},
                           {put(key("defaults"), "v4")}, {});
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_TRUE(both->succeeded);
  Compare greater = compare(key("defaults"), Compare::Target::Version, 10);
  greater.result = Compare::Result::Greater;
  auto not_greater = client_->txn({greater}, {put(key("defaults"), "v5")}, {});
  ASSERT_TRUE(not_greater.ok());
  EXPECT_FALSE(not_greater->succeeded);
  EXPECT_EQ(client_->get(key("defaults"))->kvs.at(0).value, "v4");
}

TEST_F(EtcdClientTest, TxnGetsComeInOpOrderAndDeletePrefixStopsAtTheSlash) {
  ASSERT_TRUE(client_->put(key("u/bob/1"), "x").ok());
  ASSERT_TRUE(client_->put(key("u/bob/2"), "y").ok());
  ASSERT_TRUE(client_->put(key("u/bob2/1"), "z").ok());
  auto result = client_->txn({}, {opOf(Op::Kind::GetPrefix, key("u/bob/")), put(key("other"), "o"),
                                  opOf(Op::Kind::Get, key("u/bob2/1")),
                                  opOf(Op::Kind::Get, key("missing"))},
                             {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->succeeded);
  ASSERT_EQ(result->gets.size(), 3u);
  ASSERT_EQ(result->gets[0].size(), 2u);
  EXPECT_EQ(result->gets[0][0].key, key("u/bob/1"));
  EXPECT_EQ(result->gets[0][1].key, key("u/bob/2"));
  ASSERT_EQ(result->gets[1].size(), 1u);
  EXPECT_EQ(result->gets[1][0].value, "z");
  EXPECT_TRUE(result->gets[2].empty());

  auto deleted = client_->deletePrefix(key("u/bob/"));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  auto left = client_->getPrefix(key("u/"));
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->kvs.size(), 1u);
  EXPECT_EQ(left->kvs[0].key, key("u/bob2/1"));
  EXPECT_GE(left->revision, *deleted);
  // A txn touching one key twice is etcd's INVALID_ARGUMENT, passed on.
  auto twice = client_->txn({}, {put(key("dup"), "1"), put(key("dup"), "2")}, {});
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument) << twice.status();
}

TEST_F(EtcdClientTest, PagedGetPrefixReadsOneRevisionWhileWritesGoOn) {
  constexpr int kKeys = 1200;
  for (int batch = 0; batch < kKeys / 100; ++batch) {
    std::vector<Op> ops;
    for (int i = batch * 100; i < (batch + 1) * 100; ++i) {
      ops.push_back(put(key(absl::StrFormat("m/%05d", i)), std::string(20, 'v')));
    }
    ASSERT_TRUE(client_->txn({}, ops, {}).ok());
  }
  auto before = client_->getPrefix(key("m/"));
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(before->kvs.size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_EQ(before->kvs[i].key, key(absl::StrFormat("m/%05d", i)));  // in key order, no gaps
  }

  // A writer adds keys before and after the listed range's keys while more listings page.
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  std::vector<std::pair<std::string, int64_t>> written;  // key, revision
  std::thread writer([&] {
    for (int i = 0; !stop.load() && i < 400; ++i) {
      const std::string k = key(absl::StrFormat(i % 2 == 0 ? "m/0-%03d" : "m/9-%03d", i));
      auto rev = client_->put(k, "w");
      if (rev.ok()) {
        absl::MutexLock lock(&mu);
        written.emplace_back(k, *rev);
      }
    }
  });
  const int ranges_before = calls_.count("range", absl::StatusCode::kOk);
  std::vector<RangeResult> listings;
  for (int i = 0; i < 5; ++i) {
    auto listing = client_->getPrefix(key("m/"));
    ASSERT_TRUE(listing.ok()) << listing.status();
    listings.push_back(*std::move(listing));
  }
  stop.store(true);
  writer.join();
  // 1200+ keys at 500 a page: at least 3 Range calls per listing.
  EXPECT_GE(calls_.count("range", absl::StatusCode::kOk) - ranges_before, 15);
  absl::MutexLock lock(&mu);
  for (const RangeResult& listing : listings) {
    // Exactly the keys that existed at the listing's revision: the 1200 and the writer's keys
    // written at or before it, none after.
    size_t expected = kKeys;
    for (const auto& [k, rev] : written) {
      expected += rev <= listing.revision ? 1 : 0;
    }
    EXPECT_EQ(listing.kvs.size(), expected) << "revision " << listing.revision;
    std::set<std::string> keys;
    for (const KeyValue& kv : listing.kvs) {
      EXPECT_LE(kv.mod_revision, listing.revision);
      keys.insert(kv.key);
    }
    EXPECT_EQ(keys.size(), listing.kvs.size());  // no key twice across pages
  }
  // An explicit revision reads the past: the 1200 of `before`, none of the writer's.
  auto past = client_->getPrefix(key("m/"), before->revision);
  ASSERT_TRUE(past.ok()) << past.status();
  EXPECT_EQ(past->revision, before->revision);
  EXPECT_EQ(past->kvs.size(), static_cast<size_t>(kKeys));
}

TEST_F(EtcdClientTest, WatchDeliversATxnsPutsAndDeletesInOneUpdate) {
  auto start = client_->put(key("w/a"), "1");
  ASSERT_TRUE(start.ok());
  auto b = client_->put(key("w/b"), "2");
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(client_->put(key("w0"), "outside the prefix").ok());
  WatchRecorder recorder;
  auto watch = client_->watchPrefix(key("w/"), *start + 1, recorder.callback());
  // History first: w/b's put (w/a's revision is before the start). Then the txn, live.
  ASSERT_TRUE(recorder.waitForRevision(*b, kWait));
  auto txn = client_->txn({}, {put(key("w/c"), "3"), opOf(Op::Kind::Delete, key("w/a")),
                               opOf(Op::Kind::DeletePrefix, key("w/b"))},
                          {});
  ASSERT_TRUE(txn.ok()) << txn.status();
  ASSERT_TRUE(recorder.waitForRevision(txn->revision, kWait));
  std::vector<WatchUpdate> updates = recorder.updates();
  std::vector<WatchUpdate> with_events;
  for (const WatchUpdate& u : updates) {
    if (!u.events.empty()) {
      with_events.push_back(u);
    }
  }
  ASSERT_EQ(with_events.size(), 2u);
  ASSERT_EQ(with_events[0].events.size(), 1u);
  EXPECT_EQ(with_events[0].events[0].kv.key, key("w/b"));
  const WatchUpdate& last = with_events[1];
  ASSERT_EQ(last.events.size(), 3u);
  EXPECT_EQ(last.revision, txn->revision);
  for (const WatchEvent& e : last.events) {
    EXPECT_EQ(e.kv.mod_revision, txn->revision);
  }
  EXPECT_EQ(last.events[0].type, WatchEvent::Type::Put);
  EXPECT_EQ(last.events[0].kv.key, key("w/c"));
  EXPECT_EQ(last.events[0].kv.value, "3");
  EXPECT_EQ(last.events[0].kv.version, 1);
  EXPECT_EQ(last.events[1].type, WatchEvent::Type::Delete);
  EXPECT_EQ(last.events[1].kv.key, key("w/a"));
  EXPECT_EQ(last.events[2].type, WatchEvent::Type::Delete);
  EXPECT_EQ(last.events[2].kv.key, key("w/b"));
  for (const WatchUpdate& u : updates) {
    EXPECT_EQ(u.compact_revision, 0);
  }
  // Progress notifications (every second here) carry the current revision.
  ASSERT_TRUE(recorder.waitForProgress(1, kWait));
  for (const WatchUpdate& u : recorder.updates()) {
    if (u.progress) {
      EXPECT_TRUE(u.events.empty());
      EXPECT_GE(u.revision, txn->revision);
    }
  }
  watch.reset();  // joins
  // The stream never broke (a stream the client ends itself is not reported).
  EXPECT_EQ(calls_.count("watch"), 0);
}

TEST_F(EtcdClientTest, WatchFromRevisionZeroStartsAtTheCurrentOne) {
  WatchRecorder recorder;
  auto watch = client_->watchPrefix(key("n/"), 0, recorder.callback());
  // The watch has no revision to start from until etcd created it: wait for a progress update
  // before writing, so that the write is not before the watch.
  ASSERT_TRUE(recorder.waitForProgress(1, kWait));
  auto rev = client_->put(key("n/x"), "1");
  ASSERT_TRUE(rev.ok());
  ASSERT_TRUE(recorder.waitForRevision(*rev, kWait));
  EXPECT_EQ(recorder.events(), std::vector<std::string>{absl::StrCat(*rev, " PUT ", key("n/x"), "=1")});
}

TEST_F(EtcdClientTest, WatchAtACompactedRevisionReportsItAndEnds) {
  auto first = client_->put(key("c/a"), "1");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(client_->put(key("c/a"), "2").ok());
  auto third = client_->put(key("c/a"), "3");
  ASSERT_TRUE(third.ok());
  ASSERT_TRUE(client_->compact(*third).ok());
  // Compacting the same revision again: etcd's OUT_OF_RANGE.
  EXPECT_EQ(client_->compact(*third).code(), absl::StatusCode::kOutOfRange);
  auto old = client_->getPrefix(key("c/"), *first);
  EXPECT_EQ(old.status().code(), absl::StatusCode::kOutOfRange) << old.status();

  WatchRecorder recorder;
  auto watch = client_->watchPrefix(key("c/"), *first, recorder.callback());
  ASSERT_TRUE(recorder.waitForUpdates(1, kWait));
  std::vector<WatchUpdate> updates = recorder.updates();
  EXPECT_TRUE(updates[0].events.empty());
  EXPECT_GE(updates[0].compact_revision, *third);
  // Ended: later writes are not delivered.
  auto later = client_->put(key("c/a"), "4");
  ASSERT_TRUE(later.ok());
  EXPECT_FALSE(recorder.waitForRevision(*later, absl::Milliseconds(1500)));
  EXPECT_EQ(recorder.updates().size(), 1u);
  EXPECT_EQ(calls_.count("watch", absl::StatusCode::kOutOfRange), 1);
  // The caller's way on: re-list at the current revision and watch from there + 1.
  auto relisted = client_->getPrefix(key("c/"));
  ASSERT_TRUE(relisted.ok());
  WatchRecorder again;
  auto resumed = client_->watchPrefix(key("c/"), relisted->revision + 1, again.callback());
  auto next = client_->put(key("c/a"), "5");
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(again.waitForRevision(*next, kWait));
  EXPECT_EQ(again.events(), std::vector<std::string>{absl::StrCat(*next, " PUT ", key("c/a"), "=5")});
}

TEST_F(EtcdClientTest, LeasesGrantRevokeAndKeepAlivePastTheTtl) {
  auto lease = client_->grantLease(5);
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(client_->put(key("l/plain"), "x", *lease).ok());
  EXPECT_EQ(client_->get(key("l/plain"))->kvs.at(0).lease, *lease);
  ASSERT_TRUE(client_->revokeLease(*lease).ok());
  EXPECT_TRUE(client_->get(key("l/plain"))->kvs.empty());  // revoking deleted the key
  EXPECT_EQ(client_->revokeLease(*lease).code(), absl::StatusCode::kNotFound);

  std::atomic<int> lost{0};
  auto kept = client_->keepLease(2, [&] { lost.fetch_add(1); });
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_TRUE((*kept)->alive());
  ASSERT_TRUE(client_->put(key("l/kept"), "x", (*kept)->id()).ok());
  // Three TTLs later the key is still there: the keepalives worked.
  std::this_thread::sleep_for(std::chrono::seconds(6));
  EXPECT_TRUE((*kept)->alive());
  EXPECT_EQ(lost.load(), 0);
  auto still = client_->get(key("l/kept"));
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->kvs.size(), 1u);
  EXPECT_GE(calls_.count("lease_keepalive", absl::StatusCode::kOk), 6);
  // Destroying it revokes it: the key goes at once, on_lost is not called.
  kept->reset();
  EXPECT_TRUE(client_->get(key("l/kept"))->kvs.empty());
  EXPECT_EQ(lost.load(), 0);

  // Revoked behind its back: the next keepalive answers TTL 0, on_lost runs once.
  auto revoked = client_->keepLease(2, [&] { lost.fetch_add(1); });
  ASSERT_TRUE(revoked.ok());
  ASSERT_TRUE(client_->revokeLease((*revoked)->id()).ok());
  for (int i = 0; i < 50 && lost.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(lost.load(), 1);
  EXPECT_FALSE((*revoked)->alive());
}

TEST_F(EtcdClientTest, StatusNamesOneLeaderForEveryMember) {
  std::set<uint64_t> members;
  std::set<uint64_t> leaders;
  for (const std::string& endpoint : cluster_->endpoints()) {
    auto status = client_->status(endpoint);
    ASSERT_TRUE(status.ok()) << status.status();
    members.insert(status->member_id);
    leaders.insert(status->leader);
    EXPECT_GT(status->revision, 0);
  }
  EXPECT_EQ(members.size(), 3u);
  ASSERT_EQ(leaders.size(), 1u);
  EXPECT_TRUE(members.count(*leaders.begin()));
  auto leader = cluster_->leader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_EQ(client_->status(cluster_->endpoint(*leader))->member_id, *leaders.begin());
  EXPECT_EQ(client_->status("http://127.0.0.1:1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(calls_.count("status", absl::StatusCode::kOk), 4);
}

}  // namespace
}  // namespace shadowrelay::api::etcd
