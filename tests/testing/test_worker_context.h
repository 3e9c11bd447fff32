// SPDX-License-Identifier: Apache-2.0
#pragma once
// A WorkerContext for the unit tests of relay/udp: the loop is the test's, the resolver is a real
// c-ares resolver on that loop (pointed at the test's DNS server, e.g. tests/dns dnsmasq), the
// counters are plain members, and startStream() is recorded instead of opening a session.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "crypto/address.h"
#include "crypto/salt_filter.h"
#include "dns/dns_cache.h"
#include "dns/resolver.h"
#include "relay/context/relay_env.h"
#include "relay/context/worker_context.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/users/user_matcher.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay {
class LoopEventDriver;
}  // namespace shadowrelay::relay

namespace shadowrelay::relay::testing {

class TestWorkerContext final : public WorkerContext {
 public:
  /// A stream handed to startStream(): the fd the session would have relayed, and its target.
  struct Stream {
    Fd fd;
    crypto::SocksAddress target;
  };

  /// `env` must outlive the context. env.salt_filter, env.udp_salt_filter and env.dns_cache are
  /// set to the context's own when null.
  TestWorkerContext(EventLoop& loop, RelayEnv& env);
  ~TestWorkerContext() override;

  /// Starts the resolver on env.config.nameserver (which must name a test server).
  absl::Status init();
  void setUsers(UserTablePtr table) { users_.setTable(std::move(table)); }
  std::vector<Stream>& streams() { return streams_; }

  // relay::WorkerContext
  EventLoop& loop() override { return loop_; }
  const RelayEnv& env() const override { return env_; }
  dns::Resolver& resolver() override { return *resolver_; }
  TcpStats& stats() override { return sample_.tcp; }
  UdpStats& udpStats() override { return udp_stats_; }
  WorkerSample& sample() override { return sample_; }
  UserTraffic& traffic(absl::string_view name) override;
  UserMatcher& users() override { return users_; }
  WorkerBudgets& budgets() override { return *budgets_; }
  uint8_t* scratchIn() override { return scratch_in_.get(); }
  uint8_t* scratchOut() override { return scratch_out_.get(); }
  void startStream(Fd fd, const crypto::SocksAddress& target) override;

 private:
  EventLoop& loop_;
  RelayEnv& env_;
  crypto::SaltFilter salt_filter_{10'000};
  crypto::SaltFilter udp_salt_filter_{10'000};
  dns::DnsCache dns_cache_;
  std::unique_ptr<LoopEventDriver> driver_;
  std::unique_ptr<dns::Resolver> resolver_;
  WorkerSample sample_;
  UdpStats udp_stats_;
  UserMatcher users_;
  std::unique_ptr<WorkerBudgets> budgets_;  // from env's config when constructed
  std::unique_ptr<uint8_t[]> scratch_in_;
  std::unique_ptr<uint8_t[]> scratch_out_;
  std::vector<Stream> streams_;
};

}  // namespace shadowrelay::relay::testing
