// SPDX-License-Identifier: Apache-2.0
// DatagramRouter: IP literals at once, names through the real c-ares resolver on the test's loop
// against dnsmasq on 127.0.0.1 (tests/dns/dnsmasq_server.h), then from its cache.
#include "relay/udp/datagram_router.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "tests/dns/dnsmasq_server.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/run_loop.h"
#include "tests/testing/test_worker_context.h"

namespace shadowrelay::relay {
namespace {

using dns::testing::DnsmasqServer;
using shadowrelay::testing::bytesOf;
using testing::runIterations;
using testing::runUntil;
using testing::TestWorkerContext;

class DatagramRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DnsmasqServer::Options options;
    options.records = {"--host-record=target.test,192.0.2.5"};
    auto dns = DnsmasqServer::start(options);
    ASSERT_TRUE(dns.ok()) << dns.status();
    dns_ = std::move(*dns);
    env_.config.nameserver = dns_->serverAddress();
    context_ = std::make_unique<TestWorkerContext>(loop_, env_);
    ASSERT_TRUE(context_->init().ok());
    router_ =
        std::make_unique<DatagramRouter>(context_->resolver(), dns::AddressPreference::Ipv4First,
                                         /*max_pending=*/2);
  }

  // What a queued datagram came to: delivered (where, what) or failed.
  struct Outcome {
    bool done = false;
    bool failed = false;
    std::string to;
    std::vector<uint8_t> payload;
  };
  bool queue(const crypto::SocksAddress& target, const std::vector<uint8_t>& payload,
             Outcome* outcome) {
    return queueIn(*router_, target, payload, outcome) == DatagramRouter::Queued::Yes;
  }
  static DatagramRouter::Queued queueIn(DatagramRouter& router,
                                        const crypto::SocksAddress& target,
                                        const std::vector<uint8_t>& payload, Outcome* outcome) {
    return router.queue(
        target, payload,
        [outcome](const SocketAddress& to, std::span<const uint8_t> data) {
          outcome->done = true;
          outcome->to = to.toString();
          outcome->payload.assign(data.begin(), data.end());
        },
        [outcome] {
          outcome->done = true;
          outcome->failed = true;
        });
  }

  std::unique_ptr<DnsmasqServer> dns_;
  RelayEnv env_;
  EventLoop loop_;
  std::unique_ptr<TestWorkerContext> context_;
  std::unique_ptr<DatagramRouter> router_;
};

TEST_F(DatagramRouterTest, RoutesLiteralsAtOnceWithoutAQuery) {
  SocketAddress to;
  ASSERT_EQ(router_->lookup(crypto::SocksAddress::ipv4({192, 0, 2, 1}, 53), &to),
            DatagramRouter::Lookup::Now);
  EXPECT_EQ(to.toString(), "192.0.2.1:53");
  std::array<uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 0x01;
  ASSERT_EQ(router_->lookup(crypto::SocksAddress::ipv6(v6, 443), &to), DatagramRouter::Lookup::Now);
  EXPECT_EQ(to.toString(), "[2001:db8::1]:443");
  EXPECT_EQ(socketAddressOf(crypto::SocksAddress::ipv4({10, 0, 0, 1}, 7)).toString(), "10.0.0.1:7");
  runIterations(loop_, 5);
  EXPECT_EQ(dns_->totalQueryCount(), 0);
}

TEST_F(DatagramRouterTest, QueuesANameThenDeliversACopyAndCachesTheAnswer) {
  const crypto::SocksAddress target = crypto::SocksAddress::domain("target.test", 5353);
  SocketAddress to;
  ASSERT_EQ(router_->lookup(target, &to), DatagramRouter::Lookup::NeedQuery);
  std::vector<uint8_t> payload = bytesOf("datagram");
  Outcome outcome;
  ASSERT_TRUE(queue(target, payload, &outcome));
  payload.assign(payload.size(), 0);  // the router keeps its own copy
  EXPECT_FALSE(outcome.done);         // never from inside queue()
  ASSERT_TRUE(runUntil(loop_, [&] { return outcome.done; }));
  EXPECT_FALSE(outcome.failed);
  EXPECT_EQ(outcome.to, "192.0.2.5:5353");
  EXPECT_EQ(outcome.payload, bytesOf("datagram"));

  // The answer is cached now: the next datagram is routed at once, with no new query.
  ASSERT_EQ(router_->lookup(crypto::SocksAddress::domain("target.test", 80), &to),
            DatagramRouter::Lookup::Now);
  EXPECT_EQ(to.toString(), "192.0.2.5:80");
  EXPECT_EQ(dns_->queryCount("target.test", "A"), 1);
}

TEST_F(DatagramRouterTest, UnknownNameFailsThenIsKnownToFail) {
  const crypto::SocksAddress target = crypto::SocksAddress::domain("missing.test", 53);
  Outcome outcome;
  ASSERT_TRUE(queue(target, bytesOf("x"), &outcome));
  ASSERT_TRUE(runUntil(loop_, [&] { return outcome.done; }));
  EXPECT_TRUE(outcome.failed);
  EXPECT_TRUE(outcome.payload.empty());
  SocketAddress to;
  EXPECT_EQ(router_->lookup(target, &to), DatagramRouter::Lookup::Failed);
}

TEST_F(DatagramRouterTest, RefusesToQueueBeyondMaxPending) {
  Outcome first;
  Outcome second;
  Outcome third;
  ASSERT_TRUE(queue(crypto::SocksAddress::domain("target.test", 1), bytesOf("1"), &first));
  ASSERT_TRUE(queue(crypto::SocksAddress::domain("missing.test", 2), bytesOf("2"), &second));
  EXPECT_FALSE(queue(crypto::SocksAddress::domain("target.test", 3), bytesOf("3"), &third));
  ASSERT_TRUE(runUntil(loop_, [&] { return first.done && second.done; }));
  EXPECT_FALSE(third.done);
  // Both finished: room again.
  Outcome fourth;
  EXPECT_TRUE(queue(crypto::SocksAddress::domain("target.test", 4), bytesOf("4"), &fourth));
}

TEST_F(DatagramRouterTest, DestroyedRouterNeverCallsBack) {
  Outcome outcome;
  ASSERT_TRUE(queue(crypto::SocksAddress::domain("target.test", 9), bytesOf("x"), &outcome));
  router_.reset();
  // The query still completes (and fills the cache); the callback is dropped.
  ASSERT_TRUE(runUntil(loop_, [&] {
    return context_->resolver()
        .resolveCached("target.test", dns::AddressPreference::Ipv4First)
        .has_value();
  }));
  runIterations(loop_, 5);
  EXPECT_FALSE(outcome.done);
}

// Issue 15 §5: what waits on DNS is bounded in bytes for the whole worker (the budget is
// shared by its routers), not only in count per router.
TEST_F(DatagramRouterTest, HoldsAtMostTheWorkersByteBudget) {
  ByteBudget budget(2 * (1000 + DatagramRouter::kPendingOverhead));
  UdpStats stats;
  DatagramRouter first(context_->resolver(), dns::AddressPreference::Ipv4First,
                       /*max_pending=*/100, &budget, &stats);
  DatagramRouter second(context_->resolver(), dns::AddressPreference::Ipv4First,
                        /*max_pending=*/100, &budget, &stats);
  const std::vector<uint8_t> payload(1000, 0x5a);
  Outcome a, b, c, d;
  EXPECT_EQ(queueIn(first, crypto::SocksAddress::domain("target.test", 1), payload, &a),
            DatagramRouter::Queued::Yes);
  EXPECT_EQ(queueIn(second, crypto::SocksAddress::domain("target.test", 2), payload, &b),
            DatagramRouter::Queued::Yes);
  // Room for more in count, none in bytes: dropped and counted, never called back.
  EXPECT_EQ(queueIn(second, crypto::SocksAddress::domain("target.test", 3), payload, &c),
            DatagramRouter::Queued::NoMemory);
  EXPECT_EQ(stats.dropped_memory, 1u);
  EXPECT_EQ(budget.used(), budget.limit());
  ASSERT_TRUE(runUntil(loop_, [&] { return a.done && b.done; }));
  EXPECT_FALSE(c.done);
  EXPECT_EQ(budget.used(), 0u);  // delivered: given back
  // A router destroyed with datagrams waiting gives their bytes back too.
  {
    DatagramRouter third(context_->resolver(), dns::AddressPreference::Ipv4First,
                         /*max_pending=*/100, &budget, &stats);
    EXPECT_EQ(queueIn(third, crypto::SocksAddress::domain("other.test", 4), payload, &d),
              DatagramRouter::Queued::Yes);
    EXPECT_GT(budget.used(), 0u);
  }
  EXPECT_EQ(budget.used(), 0u);
}

}  // namespace
}  // namespace shadowrelay::relay
