// SPDX-License-Identifier: Apache-2.0
#include "relay/upstream/upstream_prober.h"

#include <sys/socket.h>

#include <chrono>
#include <vector>

#include "gtest/gtest.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/upstream/upstream_balancer.h"
#include "tests/testing/loopback.h"
#include "tests/testing/manual_clock.h"
#include "tests/testing/run_loop.h"

namespace shadowrelay::relay {
namespace {

using std::chrono::seconds;
using testing::listenLoopback;
using testing::loopbackAddress;
using testing::portOf;
using testing::runUntil;

constexpr auto kInterval = seconds(10);

/// A loopback port nobody listens on (bound, then closed: connects are refused).
uint16_t closedPort() {
  Fd fd = listenLoopback();
  const uint16_t port = portOf(fd.get());
  fd.reset();
  return port;
}

class UpstreamProberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    listener_ = listenLoopback();
    closed_port_ = closedPort();
    std::vector<Upstream> servers(2);
    servers[0].label = "open";
    servers[0].resolved = loopbackAddress(portOf(listener_.get()));
    servers[1].label = "closed";
    servers[1].resolved = loopbackAddress(closed_port_);
    balancer_.emplace(std::move(servers));
  }

  bool measured(size_t i) const { return balancer_->states()[i].latency.has_value(); }

  Fd listener_;
  uint16_t closed_port_ = 0;
  std::optional<UpstreamBalancer> balancer_;
  shadowrelay::testing::ManualClock clock_;
  EventLoop loop_{EventLoopOptions{.time_source = &clock_}};
};

TEST_F(UpstreamProberTest, MarksARefusingServerDownAndBringsItBackWhenItListens) {
  UpstreamProber prober(loop_, *balancer_, kInterval, seconds(5));
  prober.start();
  ASSERT_TRUE(runUntil(loop_, [&] { return measured(0) && !balancer_->up(1); }));
  EXPECT_TRUE(balancer_->up(0));
  EXPECT_EQ(prober.rounds(), 1u);

  // The server comes back on its port; nothing changes before the next round is due.
  ListenOptions options;
  options.reuse_port = false;
  auto back = listenTcp(loopbackAddress(closed_port_), options);
  ASSERT_TRUE(back.ok()) << back.status();
  testing::runIterations(loop_, testing::kSettleIterations);
  EXPECT_FALSE(balancer_->up(1));
  EXPECT_EQ(prober.rounds(), 1u);

  clock_.advance(kInterval);
  ASSERT_TRUE(runUntil(loop_, [&] { return balancer_->up(1); }));
  EXPECT_EQ(prober.rounds(), 2u);
  EXPECT_TRUE(measured(1));
}

}  // namespace
}  // namespace shadowrelay::relay
