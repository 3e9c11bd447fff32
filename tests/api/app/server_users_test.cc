// SPDX-License-Identifier: Apache-2.0
// The control plane → workers wiring (ServerUsers) with real threads: a registry changed from
// several control threads at once, two worker loops on a WorkerPool, dedicated ports opened and
// closed on every worker. Run under TSan by ./dev test (the tsan list), which is where the
// cross-thread hand-offs (registry → apply → posted tasks → each loop) are checked.
#include "api/app/server_users.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/users/user_registry.h"
#include "crypto/providers.h"
#include "dns/dns_cache.h"
#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/worker_pool.h"
#include "relay/net/socket.h"
#include "relay/worker/worker.h"
#include "tests/testing/loopback.h"

namespace shadowrelay::api::app {
namespace {

constexpr size_t kWorkers = 2;

/// A TCP port nobody listens on right now (a listener's port, released).
uint16_t freePort() { return relay::testing::portOf(relay::testing::listenLoopback().get()); }

/// Whether a TCP connection to 127.0.0.1:port is accepted by the kernel.
bool connects(uint16_t port) { return relay::testing::connectLoopback(port).valid(); }

class ServerUsersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.dns_cache = &dns_cache_;
    pool_.start();
    workers_.resize(kWorkers);
    pool_.runOnEachAndWait([this](relay::EventLoop& loop, size_t i) {
      workers_[i] = std::make_unique<relay::Worker>(loop, env_, i);
      EXPECT_TRUE(workers_[i]->init().ok());
    });
    auto providers = crypto::CryptoProviders::create(crypto::ProviderChoice::OpenSsl);
    ASSERT_TRUE(providers.ok()) << providers.status();
    providers_ = *std::move(providers);
    users::RegistryOptions options;
    options.providers = providers_.get();  // the workers relay for these users
    options.default_method = "aes-128-gcm";
    options.shared_port = 8388;
    options.port_check = [this](uint16_t port) { return server_users_->checkPort(port); };
    auto registry = users::UserRegistry::open(std::move(options));
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    ListenPlan plan;
    plan.addresses = {*relay::parseSocketAddress("127.0.0.1", 0)};
    server_users_ = std::make_unique<ServerUsers>(*registry_, pool_, workers_, plan);
    server_users_->start();
  }

  void TearDown() override {
    server_users_.reset();
    pool_.runOnEachAndWait([this](relay::EventLoop&, size_t i) { workers_[i].reset(); });
    pool_.stop();
  }

  /// Each worker's table, read on its own loop after everything posted before has run.
  std::vector<relay::UserTablePtr> workerTables() {
    std::vector<relay::UserTablePtr> tables(kWorkers);
    pool_.runOnEachAndWait(
        [&](relay::EventLoop&, size_t i) { tables[i] = workers_[i]->users().table(); });
    return tables;
  }

  dns::DnsCache dns_cache_;
  std::unique_ptr<crypto::CryptoProviders> providers_;
  relay::RelayEnv env_;
  relay::WorkerPool pool_{kWorkers};
  std::vector<std::unique_ptr<relay::Worker>> workers_;
  std::unique_ptr<users::UserRegistry> registry_;
  std::unique_ptr<ServerUsers> server_users_;
};

TEST_F(ServerUsersTest, ChangesFromConcurrentControlThreadsReachEveryWorker) {
  constexpr int kThreads = 4;
  constexpr int kUsersEach = 8;
  std::vector<std::thread> control;
  for (int t = 0; t < kThreads; ++t) {
    control.emplace_back([this, t] {
      for (int u = 0; u < kUsersEach; ++u) {
        users::NewUser n;
        n.name = absl::StrCat("t", t, "-u", u);
        EXPECT_TRUE(registry_->create(n).ok()) << n.name;
        if (u % 2 == 1) {  // and take every other one away again
          EXPECT_TRUE(registry_->remove(absl::StrCat("t", t, "-u", u - 1)).ok());
        }
      }
    });
  }
  std::thread status([this] {  // the status API reads the wiring meanwhile
    for (int i = 0; i < 200; ++i) {
      if (relay::UserTablePtr table = server_users_->table()) {
        EXPECT_LE(table->size(), 32u);
      }
      EXPECT_TRUE(server_users_->dedicatedListeners().empty());
    }
  });
  for (auto& t : control) t.join();
  status.join();

  const relay::UserTablePtr latest = registry_->snapshot();
  ASSERT_EQ(latest->size(), static_cast<size_t>(kThreads * kUsersEach / 2));
  EXPECT_EQ(server_users_->table()->generation(), latest->generation());
  for (const relay::UserTablePtr& table : workerTables()) {
    ASSERT_NE(table, nullptr);
    EXPECT_EQ(table->generation(), latest->generation());
    for (int t = 0; t < kThreads; ++t) {
      for (int u = 0; u < kUsersEach; ++u) {
        const bool kept = u % 2 == 1;
        EXPECT_EQ(table->find(absl::StrCat("t", t, "-u", u)) != nullptr, kept) << t << "/" << u;
      }
    }
  }
}

TEST_F(ServerUsersTest, ADedicatedPortOpensOnEveryWorkerAndClosesWithItsUser) {
  const uint16_t port = freePort();
  users::NewUser n;
  n.name = "carol";
  n.port = port;
  ASSERT_TRUE(registry_->create(n).ok());
  workerTables();  // the ports are opened by tasks posted after the table's
  EXPECT_TRUE(connects(port));
  const auto listeners = server_users_->dedicatedListeners();
  ASSERT_EQ(listeners.size(), 1u);
  EXPECT_EQ(listeners[0].port, port);

  ASSERT_TRUE(registry_->remove("carol").ok());
  workerTables();
  EXPECT_FALSE(connects(port)) << "every worker closed its listener";
  EXPECT_TRUE(server_users_->dedicatedListeners().empty());
}

}  // namespace
}  // namespace shadowrelay::api::app
