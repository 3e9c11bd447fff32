// SPDX-License-Identifier: Apache-2.0
// EtcdClient under etcd faults (a real 3-member etcd 3.4 on loopback, one cluster per test):
// the leader killed while a watch is on it and writes go on, every member stopped and started
// again, quorum lost, a kept lease outlived, a compaction while the watch was cut off.
#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "api/etcd/etcd_client.h"
#include "gtest/gtest.h"
#include "tests/api/etcd/watch_recorder.h"
#include "tests/testing/etcd_cluster.h"

namespace shadowrelay::api::etcd {
namespace {

using shadowrelay::testing::EtcdCluster;
using testing::CallCounter;
using testing::WatchRecorder;

constexpr absl::Duration kRequestTimeout = absl::Seconds(1);

std::unique_ptr<EtcdClient> makeClient(std::vector<std::string> endpoints,
                                       CallCounter* calls = nullptr) {
  EtcdOptions options;
  options.endpoints = std::move(endpoints);
  options.request_timeout = kRequestTimeout;
  if (calls != nullptr) {
    options.observer = calls->observer();
  }
  auto client = EtcdClient::create(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

/// A put retried on UNAVAILABLE until `timeout` (a retried put may apply twice: fine here, the
/// tests compare the watch with etcd's own history, not with the puts).
absl::StatusOr<int64_t> putRetrying(EtcdClient& client, const std::string& key,
                                    const std::string& value,
                                    absl::Duration timeout = absl::Seconds(15)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<int64_t> rev = client.put(key, value);
    if (rev.ok() || rev.status().code() != absl::StatusCode::kUnavailable ||
        absl::Now() > deadline) {
      return rev;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

/// etcd's own record of [prefix) from `from` to `to`: a fresh watch on a healthy cluster.
std::vector<std::string> history(const std::vector<std::string>& endpoints,
                                 const std::string& prefix, int64_t from, int64_t to) {
  auto client = makeClient(endpoints);
  WatchRecorder recorder;
  auto watch = client->watchPrefix(prefix, from, recorder.callback());
  EXPECT_TRUE(recorder.waitForRevision(to, absl::Seconds(15)));
  watch.reset();
  return recorder.events();
}

std::vector<std::string> survivors(const EtcdCluster& cluster) {
  std::vector<std::string> out;
  for (int i = 0; i < cluster.size(); ++i) {
    if (cluster.running(i)) {
      out.push_back(cluster.endpoint(i));
    }
  }
  return out;
}

void expectIncreasingRevisions(const std::vector<WatchUpdate>& updates) {
  int64_t last = 0;
  for (const WatchUpdate& update : updates) {
    for (const WatchEvent& event : update.events) {
      EXPECT_GT(event.kv.mod_revision, last) << "an event out of order or twice";
      last = event.kv.mod_revision;
    }
  }
}

TEST(EtcdFailoverTest, WatchOnTheLeaderKilledWhileWritingLosesNothingAndDoublesNothing) {
  EtcdCluster::Options options;
  options.extra_flags = {"--experimental-watch-progress-notify-interval=1s"};
  auto cluster = EtcdCluster::start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto leader = (*cluster)->leader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  // The watch starts on the leader; the writer on a follower.
  std::vector<std::string> endpoints = (*cluster)->endpoints();
  std::rotate(endpoints.begin(), endpoints.begin() + *leader, endpoints.end());
  CallCounter watch_calls;
  auto watcher = makeClient(endpoints, &watch_calls);
  std::vector<std::string> writer_order = endpoints;
  std::rotate(writer_order.begin(), writer_order.begin() + 1, writer_order.end());
  auto writer = makeClient(writer_order);

  auto base = writer->put("/f/start", "");
  ASSERT_TRUE(base.ok()) << base.status();
  WatchRecorder recorder;
  auto watch = watcher->watchPrefix("/f/k/", *base + 1, recorder.callback());
  ASSERT_TRUE(recorder.waitForProgress(1, absl::Seconds(10)));  // the stream is up, on the leader

  std::atomic<int> written{0};
  std::atomic<int64_t> last_revision{0};
  std::atomic<int> failures{0};
  std::thread writes([&] {
    for (int i = 0; i < 200; ++i) {
      auto rev = putRetrying(*writer, absl::StrFormat("/f/k/%03d", i), absl::StrCat(i));
      if (!rev.ok()) {
        failures.fetch_add(1);
        continue;
      }
      last_revision.store(std::max(last_revision.load(), *rev));
      written.fetch_add(1);
    }
  });
  for (int i = 0; i < 1000 && written.load() < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto killed = (*cluster)->killLeader();
  writes.join();
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(*killed, *leader);
  ASSERT_EQ(failures.load(), 0);
  ASSERT_TRUE(recorder.waitForRevision(last_revision.load(), absl::Seconds(15)));
  // The stream on the killed leader broke, and the watch carried on on another member.
  EXPECT_GE(watch_calls.count("watch", absl::StatusCode::kUnavailable), 1);
  watch.reset();

  const std::vector<std::string> reference =
      history(survivors(**cluster), "/f/k/", *base + 1, last_revision.load());
  EXPECT_EQ(recorder.events(), reference);  // nothing lost, nothing twice, same order
  expectIncreasingRevisions(recorder.updates());
  std::set<std::string> keys;
  for (const WatchUpdate& update : recorder.updates()) {
    for (const WatchEvent& event : update.events) {
      keys.insert(event.kv.key);
    }
  }
  EXPECT_EQ(keys.size(), 200u);
}

TEST(EtcdFailoverTest, AllMembersStoppedWritesAnswerUnavailableAndTheWatchResumes) {
  auto cluster = EtcdCluster::start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  CallCounter calls;
  auto client = makeClient((*cluster)->endpoints(), &calls);
  auto base = client->put("/s/start", "");
  ASSERT_TRUE(base.ok());
  WatchRecorder recorder;
  auto watch = client->watchPrefix("/s/k/", *base + 1, recorder.callback());
  auto before = client->put("/s/k/before", "1");
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(recorder.waitForRevision(*before, absl::Seconds(10)));

  ASSERT_TRUE((*cluster)->stopAll().ok());
  const absl::Time start = absl::Now();
  auto put = client->put("/s/k/during", "x");
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(put.status().code(), absl::StatusCode::kUnavailable) << put.status();
  EXPECT_LT(took, kRequestTimeout + absl::Seconds(1)) << took;
  EXPECT_NE(put.status().message().find("127.0.0.1:"), absl::string_view::npos) << put.status();
  auto get = client->get("/s/k/before", /*serializable=*/true);
  EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable) << get.status();
  EXPECT_GE(calls.count("put", absl::StatusCode::kUnavailable), 1);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the watch retries meanwhile

  ASSERT_TRUE((*cluster)->startAll().ok());
  auto after = putRetrying(*client, "/s/k/after", "2");
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_TRUE(recorder.waitForRevision(*after, absl::Seconds(15)));
  EXPECT_GE(calls.count("watch", absl::StatusCode::kUnavailable), 1);
  watch.reset();
  EXPECT_EQ(recorder.events(),
            history((*cluster)->endpoints(), "/s/k/", *base + 1, *after));
  expectIncreasingRevisions(recorder.updates());
}

TEST(EtcdFailoverTest, QuorumLostSerializableReadsAnswerLinearizableOnesAndWritesDoNot) {
  auto cluster = EtcdCluster::start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = makeClient((*cluster)->endpoints());
  auto first = client->put("/q/key", "value");
  ASSERT_TRUE(first.ok());
  // A watch that can reach member 0 only.
  CallCounter watch_calls;
  auto watcher = makeClient({(*cluster)->endpoint(0)}, &watch_calls);
  WatchRecorder recorder;
  auto watch = watcher->watchPrefix("/q/", *first, recorder.callback());
  ASSERT_TRUE(recorder.waitForRevision(*first, absl::Seconds(10)));
  ASSERT_TRUE((*cluster)->stop(1).ok());
  ASSERT_TRUE((*cluster)->stop(2).ok());

  // Member 0 is up without a quorum: it answers from its own copy.
  absl::Time start = absl::Now();
  auto serializable = client->get("/q/key", /*serializable=*/true);
  ASSERT_TRUE(serializable.ok()) << serializable.status();
  ASSERT_EQ(serializable->kvs.size(), 1u);
  EXPECT_EQ(serializable->kvs[0].value, "value");
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900));
  auto prefix = client->getPrefix("/q/", 0, /*serializable=*/true);
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  EXPECT_EQ(prefix->kvs.size(), 1u);

  start = absl::Now();
  auto linearizable = client->get("/q/key");
  EXPECT_EQ(linearizable.status().code(), absl::StatusCode::kUnavailable) << linearizable.status();
  EXPECT_LT(absl::Now() - start, kRequestTimeout + absl::Seconds(1));
  start = absl::Now();
  auto put = client->put("/q/key", "new");
  EXPECT_EQ(put.status().code(), absl::StatusCode::kUnavailable) << put.status();
  EXPECT_LT(absl::Now() - start, kRequestTimeout + absl::Seconds(1));

  // "hasleader": member 0, alive but without a leader, ends the watch's stream (after three
  // election timeouts) instead of keeping it open and silent; the watch keeps reconnecting.
  for (int i = 0; i < 100 && watch_calls.count("watch", absl::StatusCode::kUnavailable) == 0;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GE(watch_calls.count("watch", absl::StatusCode::kUnavailable), 1);

  // One member back: quorum again, writes work, and the watch has them.
  ASSERT_TRUE((*cluster)->restart(1).ok());
  auto back = putRetrying(*client, "/q/key", "back");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(client->get("/q/key")->kvs.at(0).value, "back");
  ASSERT_TRUE(recorder.waitForRevision(*back, absl::Seconds(15)));
  EXPECT_EQ(recorder.events().back(), absl::StrCat(*back, " PUT /q/key=back"));
}

TEST(EtcdFailoverTest, KeptLeaseIsLostWhenEtcdStaysDownLongerThanItsTtl) {
  auto cluster = EtcdCluster::start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = makeClient((*cluster)->endpoints());
  std::atomic<int> lost{0};
  auto lease = client->keepLease(2, [&] { lost.fetch_add(1); });
  ASSERT_TRUE(lease.ok()) << lease.status();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_TRUE((*lease)->alive());
  EXPECT_EQ(lost.load(), 0);

  const absl::Time stopped = absl::Now();
  ASSERT_TRUE((*cluster)->stopAll().ok());  // SIGTERM: the last member takes about 2 s
  for (int i = 0; i < 100 && lost.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(lost.load(), 1);
  EXPECT_FALSE((*lease)->alive());
  // At most a TTL after the last member went (plus a refresh interval and slack).
  EXPECT_LT(absl::Now() - stopped, absl::Seconds(8));

  ASSERT_TRUE((*cluster)->startAll().ok());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(lost.load(), 1);  // once
  lease->reset();             // a lost lease is not revoked again; joins at once
}

TEST(EtcdFailoverTest, CompactionWhileTheWatchWasCutOffEndsItWithTheCompactRevision) {
  auto cluster = EtcdCluster::start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  // The watcher reaches member 0 only; the writer members 1 and 2.
  auto watcher = makeClient({(*cluster)->endpoint(0)});
  auto writer = makeClient({(*cluster)->endpoint(1), (*cluster)->endpoint(2)});
  auto first = writer->put("/c/k", "1");
  ASSERT_TRUE(first.ok());
  WatchRecorder recorder;
  auto watch = watcher->watchPrefix("/c/", *first, recorder.callback());
  ASSERT_TRUE(recorder.waitForRevision(*first, absl::Seconds(10)));

  ASSERT_TRUE((*cluster)->kill(0).ok());
  ASSERT_TRUE(putRetrying(*writer, "/c/k", "2").ok());
  auto third = putRetrying(*writer, "/c/k", "3");
  ASSERT_TRUE(third.ok());
  ASSERT_TRUE(writer->compact(*third).ok());
  // Member 0 serves clients again only once it has caught up (compaction included).
  ASSERT_TRUE((*cluster)->restart(0).ok());
  ASSERT_TRUE(recorder.waitForUpdates(2, absl::Seconds(15)));
  std::vector<WatchUpdate> updates = recorder.updates();
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_EQ(updates[0].events.size(), 1u);
  EXPECT_TRUE(updates[1].events.empty());
  EXPECT_GE(updates[1].compact_revision, *third);
}

}  // namespace
}  // namespace shadowrelay::api::etcd
