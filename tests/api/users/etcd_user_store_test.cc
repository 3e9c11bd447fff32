// SPDX-License-Identifier: Apache-2.0
// Two user registries sharing one real 3-member etcd cluster (issue 19 §1, §2): a change on one
// reaches the other, concurrent creates of one name or port have one winner, traffic counted on
// both is the cluster's total (data quota included), the live sessions and devices of one count
// against the other's limits (and go with its lease), etcd down keeps the users, a registry that
// starts while etcd is down serves its cache and catches up, a write whose answer was lost
// answers what etcd did.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/users/etcd_user_store.h"
#include "api/users/user_registry.h"
#include "gtest/gtest.h"
#include "relay/users/device_ids.h"
#include "tests/testing/etcd_cluster.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::api::users {
namespace {

using shadowrelay::testing::EtcdCluster;
using shadowrelay::testing::TempDir;

/// A registry on a store of its own, as one server has them.
struct Server {
  std::unique_ptr<EtcdUserStore> store;
  std::unique_ptr<UserRegistry> registry;
  ~Server() {
    if (store) store->stop();
    registry.reset();
  }
};

/// --device-window of every server here: short, so that a device stops counting within a test.
constexpr std::chrono::seconds kDeviceWindow{1};

std::unique_ptr<Server> startServer(const EtcdCluster& cluster, const std::string& prefix,
                                    const std::string& id, const std::string& state_dir = "",
                                    absl::Duration keep_history = absl::Minutes(10),
                                    std::vector<std::string> endpoints = {},
                                    std::function<absl::Time()> now = nullptr) {
  etcd::EtcdOptions client;
  client.endpoints = endpoints.empty() ? cluster.endpoints() : std::move(endpoints);
  client.request_timeout = absl::Seconds(2);
  EtcdStoreOptions options;
  options.prefix = prefix;
  options.replica_id = id;
  options.sync_interval = absl::Milliseconds(300);
  options.lease_ttl_seconds = 2;
  options.keep_history = keep_history;
  auto store = EtcdUserStore::create(std::move(client), std::move(options));
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  auto server = std::make_unique<Server>();
  server->store = *std::move(store);
  RegistryOptions o;
  o.state_dir = state_dir;
  o.shared_port = 8388;
  o.device_window = kDeviceWindow;
  o.shared_store = server->store.get();
  if (now) o.now = std::move(now);
  auto registry = UserRegistry::open(std::move(o));
  EXPECT_TRUE(registry.ok()) << registry.status();
  if (!registry.ok()) return nullptr;
  server->registry = *std::move(registry);
  server->store->start(server->registry.get());
  return server;
}

/// Polls `done` every 10 ms for at most `timeout`.
/// Writes poll every 200 ms: a client calling etcd in a tight loop while its channels reconnect
/// delays the reconnection (measured: 7.7 s instead of about 1 s after etcd came back).
template <typename F>
bool eventually(F done, absl::Duration timeout = absl::Seconds(3),
                absl::Duration every = absl::Milliseconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(every);
  }
  return done();
}

/// A TCP forwarder on 127.0.0.1 in front of one etcd member, the only endpoint of a server, that
/// loses what etcd answers (a request reaches etcd, its answer never comes back) or everything,
/// until cut() closes both sides of the connections open then. etcd's gRPC is HTTP/2 in clear
/// (h2c): a byte forwarder passes it unchanged. One thread with poll(); sends are bounded by
/// SO_SNDTIMEO.
class LossyProxy {
 public:
  enum class Loss { None, Answers, Everything };

  explicit LossyProxy(uint16_t target) : target_(target) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = loopback(0);
    socklen_t len = sizeof(addr);
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "proxy listener: " << strerror(errno);
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~LossyProxy() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (listener_ >= 0) ::close(listener_);
  }

  std::string endpoint() const { return absl::StrCat("http://127.0.0.1:", port_); }
  void lose(Loss what) { loss_ = what; }
  /// Closes both sides of every connection open now and forwards everything again from then
  /// on. @return whether the forwarding thread did it within 2 s.
  bool cut() {
    const int ticket = ++cuts_asked_;
    return eventually([&] { return cuts_done_.load() >= ticket; }, absl::Seconds(2));
  }
  /// Bytes etcd sent that were lost.
  uint64_t lostAnswerBytes() const { return lost_answer_bytes_; }

 private:
  struct Pair {
    int client = -1, upstream = -1;
  };

  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
  }
  static void closePair(Pair& p) {
    ::close(p.client);
    ::close(p.upstream);
    p.client = p.upstream = -1;
  }
  static bool sendAll(int fd, const char* data, size_t size) {
    while (size > 0) {
      const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  /// Moves what `from` has to `to` (or drops it). @return false when the connection ended.
  bool relay(int from, int to, bool drop, bool answers) {
    char buffer[65536];
    const ssize_t n = ::recv(from, buffer, sizeof(buffer), 0);
    if (n <= 0) return false;
    if (drop) {
      if (answers) lost_answer_bytes_ += static_cast<uint64_t>(n);
      return true;
    }
    return sendAll(to, buffer, static_cast<size_t>(n));
  }

  void run() {
    std::vector<Pair> pairs;
    while (!stop_) {
      if (const int asked = cuts_asked_.load(); cuts_done_.load() < asked) {
        for (Pair& p : pairs) closePair(p);
        pairs.clear();
        loss_ = Loss::None;
        cuts_done_ = asked;
      }
      std::vector<pollfd> fds;
      for (const Pair& p : pairs) {
        fds.push_back({p.client, POLLIN, 0});
        fds.push_back({p.upstream, POLLIN, 0});
      }
      fds.push_back({listener_, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 10) <= 0) continue;
      const Loss loss = loss_;
      for (size_t i = 0; i < pairs.size(); ++i) {
        Pair& p = pairs[i];
        bool open = true;
        if (fds[2 * i].revents != 0) {
          open = relay(p.client, p.upstream, loss == Loss::Everything, false);
        }
        if (open && fds[2 * i + 1].revents != 0) {
          open = relay(p.upstream, p.client, loss != Loss::None, true);
        }
        if (!open) closePair(p);
      }
      std::erase_if(pairs, [](const Pair& p) { return p.client < 0; });
      if (fds.back().revents & POLLIN) {
        const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        const int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const sockaddr_in to = loopback(target_);
        const timeval bound{2, 0};
        for (int fd : {client, upstream}) {
          ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof(bound));
        }
        if (upstream < 0 ||
            ::connect(upstream, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0) {
          ::close(client);
          if (upstream >= 0) ::close(upstream);
          continue;
        }
        pairs.push_back({client, upstream});
      }
    }
    for (Pair& p : pairs) closePair(p);
  }

  const uint16_t target_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<Loss> loss_{Loss::None};
  std::atomic<int> cuts_asked_{0}, cuts_done_{0};
  std::atomic<uint64_t> lost_answer_bytes_{0};
  std::thread thread_;
};

/// The client port of an endpoint "http://127.0.0.1:PORT".
uint16_t portOf(const std::string& endpoint) {
  return static_cast<uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
}

/// etcd transactions of `server` that ended with `result` ("ok", "unavailable", ...).
uint64_t txns(const Server& server, const std::string& result) {
  const auto requests = server.store->stats().requests;
  auto it = requests.find({"txn", result});
  return it == requests.end() ? 0 : it->second;
}

NewUser newUser(const std::string& name, uint16_t port = 0) {
  NewUser u;
  u.name = name;
  u.method = "aes-256-gcm";
  u.password = "pw-" + name;
  u.port = port;
  return u;
}

class EtcdUserStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = EtcdCluster::start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    a_ = startServer(*cluster_, prefix_, "a");
    b_ = startServer(*cluster_, prefix_, "b");
    ASSERT_NE(a_, nullptr);
    ASSERT_NE(b_, nullptr);
  }

  const std::string prefix_ = "/t/";
  std::unique_ptr<EtcdCluster> cluster_;
  std::unique_ptr<Server> a_, b_;
};

TEST_F(EtcdUserStoreTest, ChangesReachTheOtherServer) {
  ASSERT_TRUE(a_->registry->create(newUser("alice")).ok());
  const absl::Time written = absl::Now();
  ASSERT_TRUE(eventually([&] { return b_->registry->get("alice").ok(); }));
  EXPECT_LT(absl::Now() - written, absl::Seconds(1));
  EXPECT_NE(b_->registry->snapshot()->find("alice"), nullptr);
  EXPECT_EQ(b_->registry->get("alice")->password, "pw-alice");

  // A create of the same name on the other server: ALREADY_EXISTS, whichever is asked.
  EXPECT_EQ(b_->registry->create(newUser("alice")).status().code(),
            absl::StatusCode::kAlreadyExists);

  UserUpdate disable;
  disable.enabled = false;
  ASSERT_TRUE(b_->registry->update("alice", disable).ok());
  ASSERT_TRUE(eventually([&] { return !a_->registry->get("alice")->enabled; }));
  ASSERT_TRUE(eventually([&] { return !a_->registry->snapshot()->find("alice")->enabled; }));

  ASSERT_TRUE(a_->registry->remove("alice").ok());
  ASSERT_TRUE(eventually([&] { return !b_->registry->get("alice").ok(); }));
  EXPECT_EQ(b_->registry->snapshot()->find("alice"), nullptr);

  ASSERT_TRUE(b_->registry->setDefaultMethod("chacha20-ietf-poly1305").ok());
  ASSERT_TRUE(
      eventually([&] { return a_->registry->defaultMethod() == "chacha20-ietf-poly1305"; }));
}

TEST_F(EtcdUserStoreTest, ConcurrentCreatesHaveOneWinner) {
  for (int round = 0; round < 10; ++round) {
    const std::string name = absl::StrCat("race", round);
    std::atomic<int> ok{0}, exists{0}, other{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 6; ++i) {
      UserRegistry* r = (i % 2 == 0 ? a_ : b_)->registry.get();
      threads.emplace_back([&, r] {
        auto created = r->create(newUser(name));
        if (created.ok()) {
          ++ok;
        } else if (created.status().code() == absl::StatusCode::kAlreadyExists) {
          ++exists;
        } else {
          ++other;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 1) << name;
    EXPECT_EQ(exists.load(), 5) << name;
    EXPECT_EQ(other.load(), 0) << name;
  }
  // Two names asking for one dedicated port at once: one gets it.
  for (int round = 0; round < 5; ++round) {
    const uint16_t port = static_cast<uint16_t>(20000 + round);
    std::atomic<int> ok{0}, refused{0};
    std::thread t1([&] {
      auto c = a_->registry->create(newUser(absl::StrCat("pa", round), port));
      (c.ok() ? ok : refused)++;
      if (!c.ok()) {
        EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
      }
    });
    std::thread t2([&] {
      auto c = b_->registry->create(newUser(absl::StrCat("pb", round), port));
      (c.ok() ? ok : refused)++;
      if (!c.ok()) {
        EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
      }
    });
    t1.join();
    t2.join();
    EXPECT_EQ(ok.load(), 1);
    EXPECT_EQ(refused.load(), 1);
  }
  ASSERT_TRUE(eventually([&] { return a_->registry->size() == b_->registry->size(); }));
  EXPECT_EQ(a_->registry->size(), 15u);
}

TEST_F(EtcdUserStoreTest, TrafficAndQuotaAreTheClusterTotal) {
  NewUser u = newUser("bob");
  u.limits.data_quota_bytes = 10'000'000;
  ASSERT_TRUE(a_->registry->create(u).ok());
  ASSERT_TRUE(eventually([&] { return b_->registry->get("bob").ok(); }));
  TrafficCounters six_mb;
  six_mb.bytes_down = 6'000'000;
  six_mb.tcp_connections = 1;
  a_->registry->addTraffic("bob", six_mb);
  b_->registry->addTraffic("bob", six_mb);
  // Neither server alone is over the quota; within a few sync intervals both see 12 MB.
  for (Server* s : {a_.get(), b_.get()}) {
    ASSERT_TRUE(eventually([&] {
      auto got = s->registry->get("bob");
      return got.ok() && got->traffic.bytes_down == 12'000'000;
    })) << s->registry->get("bob")->traffic.bytes_down;
    EXPECT_EQ(s->registry->get("bob")->traffic.tcp_connections, 2u);
    EXPECT_TRUE(s->registry->snapshot()->find("bob")->quota_exceeded);
  }
  // Counted once: more syncs do not add it again.
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(a_->registry->get("bob")->traffic.bytes_down, 12'000'000u);

  // A server that stops is folded into the base after its lease; the total stays.
  b_->store->stop();
  b_.reset();
  ASSERT_TRUE(eventually(
      [&] {
        auto keys = cluster_->etcdctl({"get", prefix_ + "traffic/bob/", "--prefix", "--keys-only"});
        return keys.ok() && keys->output.find("/_base") != std::string::npos &&
               keys->output.find("traffic/bob/b") == std::string::npos;
      },
      absl::Seconds(8)));
  absl::SleepFor(absl::Milliseconds(600));
  EXPECT_EQ(a_->registry->get("bob")->traffic.bytes_down, 12'000'000u);
  // A new server reads the total.
  auto c = startServer(*cluster_, prefix_, "c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->registry->get("bob")->traffic.bytes_down, 12'000'000u);
  EXPECT_TRUE(c->registry->snapshot()->find("bob")->quota_exceeded);
}

TEST_F(EtcdUserStoreTest, LiveCountsOfOneServerCountOnTheOther) {
  NewUser u = newUser("lena");
  u.limits.max_connections = 2;
  u.limits.max_devices = 1;
  ASSERT_TRUE(a_->registry->create(u).ok());
  ASSERT_TRUE(b_->registry->create(newUser("free")).ok());
  ASSERT_TRUE(eventually([&] {
    return b_->registry->snapshot()->find("lena") != nullptr &&
           a_->registry->snapshot()->find("free") != nullptr;
  }));
  // One device id key for the cluster: both servers name a device alike.
  const std::string device("\x7f\x00\x00\x02", 4), other("\x7f\x00\x00\x03", 4);
  ASSERT_TRUE(eventually([&] {
    return a_->registry->deviceIds()->id(device) == b_->registry->deviceIds()->id(device);
  }));
  auto key = cluster_->etcdctl({"get", prefix_ + "device_key", "--print-value-only"});
  ASSERT_TRUE(key.ok());
  ASSERT_FALSE(key->output.empty());
  EXPECT_EQ(
      b_->registry->deviceIds()->id(device),
      relay::DeviceIds::fromSecret(std::string(absl::StripTrailingAsciiWhitespace(key->output)))
          ->id(device));

  // Two sessions of lena on A, from one device.
  const relay::UserTablePtr on_a = a_->registry->snapshot();
  const relay::RelayUser* at_a = on_a->find("lena");
  std::optional<relay::DeviceLease> lease = at_a->admitDevice(device);
  ASSERT_TRUE(lease.has_value());
  at_a->live->tcp_sessions = 2;
  on_a->find("free")->live->tcp_sessions = 4;  // no limit: not published
  // Within a few sync intervals B counts them: a third session or a second device is refused
  // there; the device A counts is admitted.
  const relay::UserTablePtr on_b = b_->registry->snapshot();
  const relay::RelayUser* at_b = on_b->find("lena");
  const absl::Time set = absl::Now();
  ASSERT_TRUE(eventually([&] { return at_b->live->remote_tcp_sessions.load() == 2; }));
  EXPECT_LT(absl::Now() - set, absl::Seconds(2));  // sync interval 300 ms
  EXPECT_FALSE(at_b->admitsNewSession(0));
  ASSERT_TRUE(
      eventually([&] { return at_b->live->devices->remoteOnly(kDeviceWindow).size() == 1; }));
  EXPECT_EQ(at_b->live->devices->remoteOnly(kDeviceWindow),
            std::vector<std::string>{b_->registry->deviceIds()->id(device)});
  EXPECT_FALSE(at_b->admitDevice(other).has_value());
  EXPECT_TRUE(at_b->admitDevice(device).has_value());  // counted on A: no new device
  // (B counts that device itself for its window now; past it, only A's count is left.)
  ASSERT_TRUE(eventually([&] { return at_b->live->devices->count(kDeviceWindow) == 0; }));
  auto keys = cluster_->etcdctl({"get", prefix_ + "live/", "--prefix", "--keys-only"});
  ASSERT_TRUE(keys.ok());
  EXPECT_NE(keys->output.find(prefix_ + "live/lena/a"), std::string::npos) << keys->output;
  EXPECT_EQ(keys->output.find("live/free/"), std::string::npos) << keys->output;
  EXPECT_EQ(b_->registry->snapshot()->find("free")->live->remote_tcp_sessions.load(), 0u);

  // One session ends on A: B admits one again.
  at_a->live->tcp_sessions = 1;
  ASSERT_TRUE(eventually([&] { return at_b->admitsNewSession(0); }));
  EXPECT_FALSE(at_b->admitsNewSession(1));
  // All of A's end and its device leaves the window: A's key goes, B admits the other device.
  at_a->live->tcp_sessions = 0;
  lease.reset();
  ASSERT_TRUE(eventually([&] {
    return at_b->live->remote_tcp_sessions.load() == 0 &&
           at_b->live->devices->remoteOnly(kDeviceWindow).empty();
  }));
  keys = cluster_->etcdctl({"get", prefix_ + "live/lena/a", "--keys-only"});
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->output.find("live/lena/a"), std::string::npos) << keys->output;
  EXPECT_EQ(at_a->live->devices->count(kDeviceWindow), 0u);

  // A server that stops takes its live keys with it (its lease): B's session and device of lena
  // no longer count on A.
  std::optional<relay::DeviceLease> at_b_device = at_b->admitDevice(other);
  ASSERT_TRUE(at_b_device.has_value());
  at_b->live->tcp_sessions = 2;
  ASSERT_TRUE(eventually([&] { return at_a->live->remote_tcp_sessions.load() == 2; }));
  EXPECT_FALSE(at_a->admitDevice(device).has_value());
  b_->store->stop();
  ASSERT_TRUE(
      eventually([&] { return at_a->live->remote_tcp_sessions.load() == 0; }, absl::Seconds(5)));
  EXPECT_TRUE(at_a->live->devices->remoteOnly(kDeviceWindow).empty());
  EXPECT_TRUE(at_a->admitDevice(device).has_value());
  at_b->live->tcp_sessions = 0;
}

// What other writers leave under live/ is read with care, and the device key outlives a delete.
TEST_F(EtcdUserStoreTest, LiveKeysAreCheckedAndTheDeviceKeyIsKept) {
  NewUser u = newUser("mona");
  u.limits.max_connections = 5;
  ASSERT_TRUE(a_->registry->create(u).ok());
  ASSERT_TRUE(eventually([&] { return b_->registry->snapshot()->find("mona") != nullptr; }));
  const relay::UserTablePtr on_b = b_->registry->snapshot();
  const relay::RelayUser* mona = on_b->find("mona");
  // Another replica "z" (a key of any writer: the sums do not need its replicas/ key).
  ASSERT_TRUE(cluster_
                  ->etcdctl({"put", prefix_ + "live/mona/z",
                             R"({"connections": 3, "devices": ["00112233aabbccdd"]})"})
                  .ok());
  ASSERT_TRUE(eventually([&] { return mona->live->remote_tcp_sessions.load() == 3; }));
  EXPECT_EQ(mona->live->devices->remoteOnly(kDeviceWindow),
            std::vector<std::string>{"00112233aabbccdd"});
  // Not live counts: ignored (logged), as if the key were absent.
  for (const char* bad : {"not json", R"({"connections": -1, "devices": []})",
                          R"({"connections": 4294967296, "devices": []})",
                          R"({"connections": 1, "devices": [7]})", R"({"connections": 1})"}) {
    ASSERT_TRUE(cluster_->etcdctl({"put", prefix_ + "live/mona/z", bad}).ok());
    ASSERT_TRUE(eventually([&] { return mona->live->remote_tcp_sessions.load() == 0; })) << bad;
    ASSERT_TRUE(
        cluster_->etcdctl({"put", prefix_ + "live/mona/z", R"({"connections": 2, "devices": []})"})
            .ok());
    ASSERT_TRUE(eventually([&] { return mona->live->remote_tcp_sessions.load() == 2; })) << bad;
  }
  ASSERT_TRUE(cluster_->etcdctl({"del", prefix_ + "live/mona/z"}).ok());
  ASSERT_TRUE(eventually([&] { return mona->live->remote_tcp_sessions.load() == 0; }));

  // The device key deleted: put back with the same value (ids do not change).
  const std::string device("\x0a\x01\x02\x03", 4);
  const std::string id = a_->registry->deviceIds()->id(device);
  auto before = cluster_->etcdctl({"get", prefix_ + "device_key", "--print-value-only"});
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(cluster_->etcdctl({"del", prefix_ + "device_key"}).ok());
  ASSERT_TRUE(eventually(
      [&] {
        auto after = cluster_->etcdctl({"get", prefix_ + "device_key", "--print-value-only"});
        return after.ok() && !after->output.empty();
      },
      absl::Seconds(5), absl::Milliseconds(200)));
  auto after = cluster_->etcdctl({"get", prefix_ + "device_key", "--print-value-only"});
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->output, before->output);
  EXPECT_EQ(a_->registry->deviceIds()->id(device), id);
  EXPECT_EQ(b_->registry->deviceIds()->id(device), id);
}

TEST_F(EtcdUserStoreTest, EtcdDownKeepsTheUsersAndRefusesWrites) {
  ASSERT_TRUE(a_->registry->create(newUser("carol")).ok());
  ASSERT_TRUE(eventually([&] { return b_->registry->get("carol").ok(); }));
  ASSERT_TRUE(cluster_->stopAll().ok());
  const absl::Time before = absl::Now();
  auto refused = a_->registry->create(newUser("dave"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
  // Reads and the relay's table stay.
  EXPECT_TRUE(a_->registry->get("carol").ok());
  EXPECT_NE(b_->registry->snapshot()->find("carol"), nullptr);
  ASSERT_TRUE(cluster_->startAll().ok());
  // Writes work again and reach the other server (its watch resumed).
  ASSERT_TRUE(eventually([&] { return a_->registry->create(newUser("dave")).ok(); },
                         absl::Seconds(10), absl::Milliseconds(200)));
  ASSERT_TRUE(eventually([&] { return b_->registry->get("dave").ok(); }, absl::Seconds(5)));
}

TEST_F(EtcdUserStoreTest, StartsFromItsCacheWhileEtcdIsDown) {
  TempDir dir;
  {
    auto c = startServer(*cluster_, prefix_, "c", dir.path());
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(a_->registry->create(newUser("erin")).ok());
    ASSERT_TRUE(eventually([&] { return c->registry->get("erin").ok(); }));
  }
  ASSERT_TRUE(cluster_->stopAll().ok());
  auto c = startServer(*cluster_, prefix_, "c2", dir.path());
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->registry->get("erin").ok());  // from the cache
  ASSERT_TRUE(cluster_->startAll().ok());
  ASSERT_TRUE(eventually([&] { return a_->registry->remove("erin").ok(); }, absl::Seconds(10),
                         absl::Milliseconds(200)));
  ASSERT_TRUE(eventually([&] { return !c->registry->get("erin").ok(); }, absl::Seconds(5)));
}

TEST_F(EtcdUserStoreTest, ALeaderKillDoesNotStopWrites) {
  ASSERT_TRUE(cluster_->killLeader().ok());
  // A create whose answer was lost with the leader is found made (OK) or not (made again), but
  // when etcd does not tell within the store's bound the create answers UNAVAILABLE, and the
  // next try finds it made: ALREADY_EXISTS then.
  ASSERT_TRUE(eventually(
      [&] {
        auto c = a_->registry->create(newUser("frank"));
        return c.ok() || c.status().code() == absl::StatusCode::kAlreadyExists;
      },
      absl::Seconds(5), absl::Milliseconds(200)));
  ASSERT_TRUE(eventually([&] { return b_->registry->get("frank").ok(); }, absl::Seconds(3)));
}

TEST_F(EtcdUserStoreTest, CompactsHistoryOlderThanItKeeps) {
  auto c = startServer(*cluster_, prefix_, "c", "", absl::Seconds(1));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(a_->registry->create(newUser("gina")).ok());
  auto first = cluster_->etcdctl({"get", prefix_ + "users/gina", "-w", "json"});
  ASSERT_TRUE(first.ok());
  // Revisions move on (traffic), and after keep_history the old ones are compacted.
  // The revision of that read, from etcdctl's JSON header ("revision":N).
  const std::string& text = first->output;
  const size_t at = text.find("\"revision\":");
  ASSERT_NE(at, std::string::npos) << text;
  const size_t begin = at + std::string("\"revision\":").size();
  const std::string old_rev = text.substr(begin, text.find_first_not_of("0123456789", begin) - begin);
  ASSERT_FALSE(old_rev.empty()) << text;
  for (int i = 0; i < 5; ++i) {
    TrafficCounters t;
    t.bytes_up = 1000;
    t.tcp_connections = 1;
    c->registry->addTraffic("gina", t);
    absl::SleepFor(absl::Milliseconds(400));
  }
  ASSERT_TRUE(eventually(
      [&] {
        auto old = cluster_->etcdctl({"get", prefix_ + "users/gina", "--rev", old_rev});
        return old.ok() && old->output.find("compacted") != std::string::npos;
      },
      absl::Seconds(5), absl::Milliseconds(200)))
      << "revision " << old_rev << " still readable";
  // The servers go on: a change still reaches the other one.
  ASSERT_TRUE(b_->registry->remove("gina").ok());
  ASSERT_TRUE(eventually([&] { return !c->registry->get("gina").ok(); }));
}

/// mod_revision of `key` from etcdctl's JSON ("mod_revision":N), or "" when absent.
std::string modRevision(EtcdCluster& cluster, const std::string& key) {
  auto got = cluster.etcdctl({"get", key, "-w", "json"});
  if (!got.ok()) return "";
  const std::string& text = got->output;
  const size_t at = text.find("\"mod_revision\":");
  if (at == std::string::npos) return "";
  const size_t begin = at + std::string("\"mod_revision\":").size();
  return text.substr(begin, text.find_first_not_of("0123456789", begin) - begin);
}

/// A server whose only endpoint is `proxy`, with a user "first" made through it, once its watch
/// has brought that change back (so that no delivery of the start is still on its way).
std::unique_ptr<Server> startOnProxy(EtcdCluster& cluster, const std::string& prefix,
                                    LossyProxy& proxy) {
  auto p = startServer(cluster, prefix, "p", "", absl::Minutes(10), {proxy.endpoint()});
  if (p == nullptr) return nullptr;
  EXPECT_TRUE(p->registry->create(newUser("first")).ok());
  const std::string made = modRevision(cluster, prefix + "config_revision");
  EXPECT_FALSE(made.empty());
  EXPECT_TRUE(eventually([&] { return p->store->stats().revision >= std::stoll(made); }));
  return p;
}

// A create whose answer is lost after etcd made it (the connection cut while the answer was
// on its way) answers OK: it was made. Even when another server changed the store again before
// the answer was known (the guard's value is then the other server's, and the lost write is
// found in its history). A create of that name is ALREADY_EXISTS afterwards, on either server.
// A delete whose answer is lost with nothing after it answers OK too (and a second one
// NOT_FOUND).
TEST_F(EtcdUserStoreTest, AWriteWhoseAnswerWasLostAnswersWhatEtcdDid) {
  LossyProxy proxy(portOf(cluster_->endpoint(0)));
  auto p = startOnProxy(*cluster_, prefix_, proxy);
  ASSERT_NE(p, nullptr);
  const uint64_t unanswered = txns(*p, "unavailable");

  proxy.lose(LossyProxy::Loss::Answers);
  absl::StatusOr<User> created = absl::UnknownError("not answered");
  std::atomic<bool> answered{false};
  std::jthread create([&] {
    created = p->registry->create(newUser("lost"));
    answered = true;
  });
  // etcd made it: the other server hears it, and changes the store again.
  const bool heard = eventually([&] { return b_->registry->get("lost").ok(); });
  const bool followed = heard && b_->registry->create(newUser("after")).ok();
  const bool waiting = !answered;
  const bool cut = proxy.cut();
  create.join();
  ASSERT_TRUE(heard);
  ASSERT_TRUE(followed);
  ASSERT_TRUE(waiting) << "the create was answered while its answer was being lost";
  ASSERT_TRUE(cut);
  EXPECT_GT(proxy.lostAnswerBytes(), 0u);
  EXPECT_GT(txns(*p, "unavailable"), unanswered) << "no transaction lost its answer";
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->name, "lost");

  EXPECT_TRUE(p->registry->get("lost").ok());
  ASSERT_TRUE(eventually([&] { return p->registry->get("after").ok(); }, absl::Seconds(5)));
  EXPECT_EQ(p->registry->create(newUser("lost")).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(b_->registry->create(newUser("lost")).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(p->registry->size(), 3u);
  ASSERT_TRUE(eventually([&] { return b_->registry->size() == 3; }));
  // The next change from the server that lost the answer goes through at once.
  ASSERT_TRUE(p->registry->remove("first").ok());
  ASSERT_TRUE(eventually([&] { return !b_->registry->get("first").ok(); }));
  const std::string removed = modRevision(*cluster_, prefix_ + "config_revision");
  ASSERT_TRUE(eventually([&] { return p->store->stats().revision >= std::stoll(removed); }));

  // Lost again, and nothing follows: the guard holds this write's id.
  proxy.lose(LossyProxy::Loss::Answers);
  absl::Status removed_again = absl::UnknownError("not answered");
  std::jthread remove([&] { removed_again = p->registry->remove("after"); });
  const bool gone = eventually([&] { return !b_->registry->get("after").ok(); });
  ASSERT_TRUE(proxy.cut());
  remove.join();
  ASSERT_TRUE(gone);
  EXPECT_TRUE(removed_again.ok()) << removed_again;
  EXPECT_FALSE(p->registry->get("after").ok());
  EXPECT_EQ(p->registry->remove("after").code(), absl::StatusCode::kNotFound);
}

// A create that never reached etcd (everything lost, then the connection cut): etcd is asked
// whether it was made, it was not, and the registry makes it again: OK, the user made once.
TEST_F(EtcdUserStoreTest, AWriteThatNeverReachedEtcdIsMadeAgain) {
  LossyProxy proxy(portOf(cluster_->endpoint(0)));
  auto p = startOnProxy(*cluster_, prefix_, proxy);
  ASSERT_NE(p, nullptr);
  const uint64_t unanswered = txns(*p, "unavailable");

  proxy.lose(LossyProxy::Loss::Everything);
  absl::StatusOr<User> created = absl::UnknownError("not answered");
  std::jthread create([&] { created = p->registry->create(newUser("never")); });
  absl::SleepFor(absl::Milliseconds(300));
  auto stored = cluster_->etcdctl({"get", prefix_ + "users/never", "--keys-only"});
  const bool cut = proxy.cut();
  create.join();
  ASSERT_TRUE(cut);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->output.find("users/never"), std::string::npos) << "it reached etcd";
  EXPECT_GT(txns(*p, "unavailable"), unanswered) << "no transaction lost its answer";
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(eventually([&] { return b_->registry->get("never").ok(); }));
  EXPECT_EQ(b_->registry->create(newUser("never")).status().code(),
            absl::StatusCode::kAlreadyExists);
}

// etcd made the create but its answers stay lost (the connection is up, nothing comes back):
// the create answers UNAVAILABLE within about two request timeouts, as with etcd down. The
// change is heard once the connection is back, and a try again is ALREADY_EXISTS.
TEST_F(EtcdUserStoreTest, AWriteWhoseAnswersStayLostIsUnavailable) {
  LossyProxy proxy(portOf(cluster_->endpoint(0)));
  auto p = startOnProxy(*cluster_, prefix_, proxy);
  ASSERT_NE(p, nullptr);

  proxy.lose(LossyProxy::Loss::Answers);
  const absl::Time before = absl::Now();
  auto created = p->registry->create(newUser("unknown"));
  const absl::Duration took = absl::Now() - before;
  ASSERT_TRUE(proxy.cut());
  EXPECT_EQ(created.status().code(), absl::StatusCode::kUnavailable) << created.status();
  // The transaction's 2 s, then 2 s of asking (one fence, unanswered, for 2 s).
  EXPECT_LT(took, absl::Seconds(6.5));
  ASSERT_TRUE(eventually([&] { return b_->registry->get("unknown").ok(); }));
  ASSERT_TRUE(eventually([&] { return p->registry->get("unknown").ok(); }, absl::Seconds(5)));
  EXPECT_EQ(p->registry->create(newUser("unknown")).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(EtcdUserStoreTest, AFirstUseTravelsWithTheTrafficNotAsAChange) {
  NewUser u = newUser("ivy");
  u.limits.expire_after_first_use = absl::Hours(1);
  ASSERT_TRUE(a_->registry->create(u).ok());
  ASSERT_TRUE(eventually([&] { return b_->registry->get("ivy").ok(); }));
  const std::string guard = modRevision(*cluster_, prefix_ + "config_revision");
  ASSERT_FALSE(guard.empty());
  TrafficCounters t;
  t.bytes_up = 100;
  t.tcp_connections = 1;
  a_->registry->addTraffic("ivy", t);
  const absl::Time seen = absl::Now();
  ASSERT_TRUE(a_->registry->get("ivy")->first_use.has_value());
  ASSERT_TRUE(eventually([&] { return b_->registry->get("ivy")->first_use.has_value(); }));
  EXPECT_LT(absl::AbsDuration(*b_->registry->get("ivy")->first_use - seen), absl::Seconds(1));
  // B's table expires the user an hour after A's first use, and no configuration was written.
  EXPECT_EQ(b_->registry->get("ivy")->expiry(), *b_->registry->get("ivy")->first_use + absl::Hours(1));
  absl::SleepFor(absl::Seconds(1));  // a flush() of either would have written it by now
  ASSERT_TRUE(a_->registry->flush().ok());
  EXPECT_EQ(modRevision(*cluster_, prefix_ + "config_revision"), guard);
  // A new server reads it from the traffic keys.
  auto c = startServer(*cluster_, prefix_, "c");
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->registry->get("ivy")->first_use.has_value());
  EXPECT_LT(absl::AbsDuration(*c->registry->get("ivy")->first_use - seen), absl::Seconds(1));
}

TEST_F(EtcdUserStoreTest, ARenewingQuotaCountsTheClusterInEachPeriodWithoutConfigWrites) {
  // Servers on a clock the test moves (RegistryOptions::now), under a prefix of their own.
  const std::string prefix = "/periods/";
  std::atomic<int64_t> offset_seconds{0};
  auto clock = [&offset_seconds] { return absl::Now() + absl::Seconds(offset_seconds.load()); };
  auto c = startServer(*cluster_, prefix, "c", "", absl::Minutes(10), {}, clock);
  auto d = startServer(*cluster_, prefix, "d", "", absl::Minutes(10), {}, clock);
  ASSERT_NE(c, nullptr);
  ASSERT_NE(d, nullptr);
  NewUser u = newUser("dan");
  u.limits.data_quota_bytes = 10'000'000;
  u.limits.data_quota_period = QuotaPeriod::Daily;
  ASSERT_TRUE(c->registry->create(u).ok());
  ASSERT_TRUE(eventually([&] { return d->registry->get("dan").ok(); }));
  const std::string guard = modRevision(*cluster_, prefix + "config_revision");
  ASSERT_FALSE(guard.empty());
  TrafficCounters six_mb;
  six_mb.bytes_down = 6'000'000;
  six_mb.tcp_connections = 1;
  auto used = [](Server& s) { return s.registry->get("dan")->quotaUsedBytes(); };
  auto over = [](Server& s) { return s.registry->snapshot()->find("dan")->quota_exceeded; };

  // Period 1: 6 MB through each server is 12 MB on both.
  c->registry->addTraffic("dan", six_mb);
  d->registry->addTraffic("dan", six_mb);
  for (Server* s : {c.get(), d.get()}) {
    ASSERT_TRUE(eventually([&] { return used(*s) == 12'000'000; })) << used(*s);
    EXPECT_TRUE(over(*s));
  }

  // The next day: both start the period themselves (tick), at zero, and write no config.
  const absl::Time now = clock();
  const absl::Time midnight =
      absl::FromCivil(absl::CivilDay(absl::ToCivilDay(now, absl::UTCTimeZone())) + 1,
                      absl::UTCTimeZone());
  offset_seconds += absl::ToInt64Seconds(midnight - now) + 1;
  for (Server* s : {c.get(), d.get()}) {
    s->registry->tick();
    EXPECT_EQ(used(*s), 0u);
    EXPECT_FALSE(over(*s));
    EXPECT_EQ(s->registry->get("dan")->traffic.bytes_down, 12'000'000u);  // all time
  }
  // Period 2: 6 MB through C reaches D as 6 MB in the period (not 0, not 18 MB) ...
  c->registry->addTraffic("dan", six_mb);
  ASSERT_TRUE(eventually([&] { return used(*d) == 6'000'000; })) << used(*d);
  EXPECT_FALSE(over(*d));
  // ... and 6 MB more through D is over the quota on both.
  d->registry->addTraffic("dan", six_mb);
  for (Server* s : {c.get(), d.get()}) {
    ASSERT_TRUE(eventually([&] { return used(*s) == 12'000'000; })) << used(*s);
    EXPECT_TRUE(over(*s));
  }
  absl::SleepFor(absl::Seconds(1));  // a few syncs
  for (Server* s : {c.get(), d.get()}) ASSERT_TRUE(s->registry->flush().ok());
  EXPECT_EQ(modRevision(*cluster_, prefix + "config_revision"), guard);

  // A server started now reads the period's usage from the traffic keys.
  auto e = startServer(*cluster_, prefix, "e", "", absl::Minutes(10), {}, clock);
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(eventually([&] { return used(*e) == 12'000'000; })) << used(*e);
  EXPECT_TRUE(over(*e));
  EXPECT_EQ(e->registry->get("dan")->traffic.bytes_down, 24'000'000u);

  // D goes; its key is folded into _base with its bytes of the period.
  d->store->stop();
  d.reset();
  ASSERT_TRUE(eventually(
      [&] {
        auto keys = cluster_->etcdctl({"get", prefix + "traffic/dan/", "--prefix", "--keys-only"});
        return keys.ok() && keys->output.find("/_base") != std::string::npos &&
               keys->output.find("traffic/dan/d") == std::string::npos;
      },
      absl::Seconds(8)));
  absl::SleepFor(absl::Milliseconds(600));
  for (Server* s : {c.get(), e.get()}) {
    EXPECT_EQ(used(*s), 12'000'000u);
    EXPECT_TRUE(over(*s));
  }
  EXPECT_EQ(modRevision(*cluster_, prefix + "config_revision"), guard);
}

TEST_F(EtcdUserStoreTest, ALostLeaseCountsTheOldKeysOnce) {
  NewUser u = newUser("gus");
  u.limits.data_quota_bytes = 100'000'000;
  u.limits.data_quota_period = QuotaPeriod::Daily;
  ASSERT_TRUE(a_->registry->create(u).ok());
  ASSERT_TRUE(eventually([&] { return b_->registry->get("gus").ok(); }));
  TrafficCounters t;
  t.bytes_down = 5'000'000;
  t.tcp_connections = 1;
  a_->registry->addTraffic("gus", t);
  t.bytes_down = 3'000'000;
  b_->registry->addTraffic("gus", t);
  auto down = [](Server& s, const std::string& name) {
    return s.registry->get(name)->traffic.bytes_down;
  };
  for (Server* s : {a_.get(), b_.get()}) {
    ASSERT_TRUE(eventually([&] { return down(*s, "gus") == 8'000'000; }));
  }
  // etcd away for longer than the lease (2 s): both servers continue under new ids, and the
  // keys of the old ones are folded into _base.
  ASSERT_TRUE(cluster_->stopAll().ok());
  absl::SleepFor(absl::Seconds(4));
  ASSERT_TRUE(cluster_->startAll().ok());
  for (Server* s : {a_.get(), b_.get()}) {
    ASSERT_TRUE(eventually([&] { return s->store->stats().replica_id.size() > 1; },
                           absl::Seconds(15), absl::Milliseconds(200)))
        << s->store->stats().replica_id;
  }
  ASSERT_TRUE(eventually(
      [&] {
        auto keys = cluster_->etcdctl({"get", prefix_ + "traffic/gus/", "--prefix", "--keys-only"});
        return keys.ok() && keys->output.find("traffic/gus/a\n") == std::string::npos &&
               keys->output.find("traffic/gus/b\n") == std::string::npos &&
               keys->output.find("/_base") != std::string::npos;
      },
      absl::Seconds(15), absl::Milliseconds(200)));
  absl::SleepFor(absl::Seconds(1));
  // Counted once on each server (the old keys are both the listener's own counts and etcd's).
  for (Server* s : {a_.get(), b_.get()}) {
    EXPECT_EQ(s->registry->get("gus")->traffic.bytes_down, 8'000'000u);
    EXPECT_EQ(s->registry->get("gus")->quotaUsedBytes(), 8'000'000u);
  }
  t.bytes_down = 1'000'000;
  a_->registry->addTraffic("gus", t);
  for (Server* s : {a_.get(), b_.get()}) {
    ASSERT_TRUE(eventually([&] { return down(*s, "gus") == 9'000'000; })) << down(*s, "gus");
    EXPECT_EQ(s->registry->get("gus")->quotaUsedBytes(), 9'000'000u);
  }
}

TEST_F(EtcdUserStoreTest, AReplicaIdGivenAgainAfterARestartKeepsTheEarlierCounts) {
  ASSERT_TRUE(a_->registry->create(newUser("hal")).ok());
  auto down = [](Server& s) { return s.registry->get("hal")->traffic.bytes_down; };
  TrafficCounters t;
  t.bytes_down = 5'000'000;
  t.tcp_connections = 1;
  {
    auto x = startServer(*cluster_, prefix_, "x");
    ASSERT_NE(x, nullptr);
    ASSERT_TRUE(eventually([&] { return x->registry->get("hal").ok(); }));
    x->registry->addTraffic("hal", t);
    ASSERT_TRUE(eventually([&] { return down(*a_) == 5'000'000; }));
  }
  auto x = startServer(*cluster_, prefix_, "x");  // the same id again
  ASSERT_NE(x, nullptr);
  ASSERT_TRUE(eventually([&] { return x->store->stats().replica_id != "x"; }));
  ASSERT_TRUE(eventually([&] { return down(*x) == 5'000'000; })) << down(*x);
  t.bytes_down = 1'000'000;
  x->registry->addTraffic("hal", t);
  // The second process's megabyte adds to the first one's five, on every server.
  for (Server* s : {a_.get(), x.get()}) {
    ASSERT_TRUE(eventually([&] { return down(*s) == 6'000'000; })) << down(*s);
  }
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(down(*a_), 6'000'000u);
}

// A delivery of an older state waiting for the registry while the same server writes the next
// change used to be applied after it and undo it (44 of 60 creates missing on main before the
// fix): SharedStoreListener::applyShared() reads the contents under the registry's lock now.
TEST_F(EtcdUserStoreTest, BackToBackChangesOfOneServerAllStay) {
  constexpr int kUsers = 60;
  for (int i = 0; i < kUsers; ++i) {
    ASSERT_TRUE(a_->registry->create(newUser(absl::StrCat("quick", i))).ok()) << i;
  }
  auto missing = [&](Server& s) {
    int n = 0;
    for (int i = 0; i < kUsers; ++i) n += s.registry->get(absl::StrCat("quick", i)).ok() ? 0 : 1;
    return n;
  };
  ASSERT_TRUE(eventually([&] { return missing(*b_) == 0; }, absl::Seconds(5))) << missing(*b_);
  absl::SleepFor(absl::Seconds(1));  // every delivery of the burst has been applied
  EXPECT_EQ(missing(*a_), 0);
  EXPECT_EQ(missing(*b_), 0);
  for (int i = 0; i < kUsers; i += 2) {
    ASSERT_TRUE(a_->registry->remove(absl::StrCat("quick", i)).ok()) << i;
  }
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(missing(*a_), kUsers / 2);
  ASSERT_TRUE(eventually([&] { return missing(*b_) == kUsers / 2; })) << missing(*b_);
}

// A renewing quota set anew within its period (daily, then none, then daily again, the same
// day) counts from then on every server: each server's key is written again with the new
// period's bytes, although the period's start is the same.
TEST_F(EtcdUserStoreTest, APeriodSetAgainWithinTheDayCountsFromThenEverywhere) {
  NewUser u = newUser("rey");
  u.limits.data_quota_bytes = 100'000'000;
  u.limits.data_quota_period = QuotaPeriod::Daily;
  ASSERT_TRUE(a_->registry->create(u).ok());
  ASSERT_TRUE(eventually([&] { return b_->registry->get("rey").ok(); }));
  auto used = [](Server& s) { return s.registry->get("rey")->quotaUsedBytes(); };
  auto period = [](Server& s) { return s.registry->get("rey")->limits.data_quota_period; };
  TrafficCounters t;
  t.bytes_down = 6'000'000;
  t.tcp_connections = 1;
  a_->registry->addTraffic("rey", t);
  b_->registry->addTraffic("rey", t);
  for (Server* s : {a_.get(), b_.get()}) {
    ASSERT_TRUE(eventually([&] { return used(*s) == 12'000'000; })) << used(*s);
  }
  UserUpdate none;
  none.data_quota_period = QuotaPeriod::None;
  ASSERT_TRUE(a_->registry->update("rey", none).ok());
  ASSERT_TRUE(eventually([&] { return period(*b_) == QuotaPeriod::None; }));
  UserUpdate daily;
  daily.data_quota_period = QuotaPeriod::Daily;
  ASSERT_TRUE(a_->registry->update("rey", daily).ok());
  ASSERT_TRUE(eventually([&] { return period(*b_) == QuotaPeriod::Daily; }));
  for (Server* s : {a_.get(), b_.get()}) {
    ASSERT_TRUE(eventually([&] { return used(*s) == 0; })) << used(*s);
  }
  t.bytes_down = 1'000'000;
  b_->registry->addTraffic("rey", t);
  for (Server* s : {a_.get(), b_.get()}) {
    ASSERT_TRUE(eventually([&] { return used(*s) == 1'000'000; })) << used(*s);
  }
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(used(*a_), 1'000'000u);
  EXPECT_EQ(a_->registry->get("rey")->traffic.bytes_down, 13'000'000u);
}

}  // namespace
}  // namespace shadowrelay::api::users
