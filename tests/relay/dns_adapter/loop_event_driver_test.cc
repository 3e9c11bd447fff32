// SPDX-License-Identifier: Apache-2.0
// relay::LoopEventDriver: the dns::EventDriver contract on the real reactor, and CaresResolver
// running on relay::EventLoop against dnsmasq.
#include "relay/dns_adapter/loop_event_driver.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "dns/cares_resolver.h"
#include "dns/dns_cache.h"
#include "gtest/gtest.h"
#include "relay/event/event_loop.h"
#include "tests/dns/dnsmasq_server.h"
#include "tests/testing/manual_clock.h"

namespace shadowrelay::relay {
namespace {

using std::chrono::milliseconds;

bool runUntil(EventLoop& loop, const std::function<bool()>& done, milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    loop.runOnce(milliseconds(20));
  }
  return true;
}

class SocketPair {
 public:
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_), 0); }
  ~SocketPair() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int a() const { return fds_[0]; }
  int b() const { return fds_[1]; }

 private:
  int fds_[2] = {-1, -1};
};

TEST(LoopEventDriverTest, WatchReportsReadinessAndMayDestroyItselfInItsCallback) {
  EventLoop loop;
  LoopEventDriver driver(loop);
  SocketPair pair;
  int calls = 0;
  dns::FdWatchPtr watch;
  watch = driver.watchFd(pair.a(), dns::kFdReadable, [&](uint32_t events) {
    EXPECT_NE(events & dns::kFdReadable, 0u);
    ++calls;
    watch.reset();  // Allowed by the dns::EventDriver contract.
  });
  ASSERT_EQ(::write(pair.b(), "x", 1), 1);
  loop.runOnce(milliseconds(100));
  loop.runOnce(milliseconds(10));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(watch, nullptr);
  EXPECT_EQ(loop.watcherCount(), 0u);
}

TEST(LoopEventDriverTest, InterestCanBeChanged) {
  EventLoop loop;
  LoopEventDriver driver(loop);
  SocketPair pair;
  uint32_t seen = 0;
  dns::FdWatchPtr watch = driver.watchFd(pair.a(), 0, [&](uint32_t events) { seen |= events; });
  loop.runOnce(milliseconds(5));
  EXPECT_EQ(seen, 0u);
  watch->setInterest(dns::kFdWritable);
  loop.runOnce(milliseconds(100));
  EXPECT_EQ(seen & dns::kFdWritable, dns::kFdWritable);
}

TEST(LoopEventDriverTest, ZeroDelayTimerFiresOnALaterIterationOnly) {
  EventLoop loop;
  LoopEventDriver driver(loop);
  int fired = 0;
  dns::DriverTimerPtr timer = driver.createTimer([&] { ++fired; });
  timer->armAfter(std::chrono::nanoseconds::zero());
  EXPECT_EQ(fired, 0);
  loop.runOnce(milliseconds(100));
  EXPECT_EQ(fired, 1);
}

// On the loop's clock (a manual one here): a timer fires in the first iteration at or after its
// deadline, never before, and re-arming replaces the deadline.
TEST(LoopEventDriverTest, TimersFollowTheLoopsClock) {
  shadowrelay::testing::ManualClock clock;
  EventLoopOptions options;
  options.time_source = &clock;
  EventLoop loop(options);
  LoopEventDriver driver(loop);
  EXPECT_EQ(driver.now(), clock.now());
  int fired = 0;
  dns::DriverTimerPtr timer = driver.createTimer([&] { ++fired; });
  timer->armAfter(milliseconds(30));
  timer->armAfter(milliseconds(5));  // Re-arming replaces the deadline.
  clock.advance(milliseconds(4));
  loop.runOnce(milliseconds(0));
  EXPECT_EQ(fired, 0) << "fired 1 ms before its deadline";
  EXPECT_EQ(driver.now(), clock.now()) << "now() is refreshed each iteration";
  clock.advance(milliseconds(1));
  loop.runOnce(milliseconds(0));
  EXPECT_EQ(fired, 1) << "did not fire at its deadline";
  clock.advance(milliseconds(25));
  loop.runOnce(milliseconds(0));
  EXPECT_EQ(fired, 1) << "the replaced 30 ms deadline fired as well";
  timer->armAfter(milliseconds(1));
  timer->cancel();
  clock.advance(milliseconds(1));
  loop.runOnce(milliseconds(0));
  EXPECT_EQ(fired, 1) << "a cancelled timer fired";
  EXPECT_EQ(loop.armedTimerCount(), 0u);
}

TEST(LoopEventDriverTest, CaresResolverRunsOnTheEventLoop) {
  dns::testing::DnsmasqServer::Options options;
  options.records = {"--host-record=h.test,10.0.0.2,fd00::2"};
  auto server = dns::testing::DnsmasqServer::start(options);
  ASSERT_TRUE(server.ok()) << server.status();

  EventLoop loop;
  {
    LoopEventDriver driver(loop);
    dns::DnsCache cache;
    dns::ResolverOptions resolver_options;
    resolver_options.servers = (*server)->serverAddress();
    auto resolver = dns::CaresResolver::create(driver, cache, resolver_options, nullptr);
    ASSERT_TRUE(resolver.ok()) << resolver.status();

    std::vector<dns::ResolveResult> results;
    std::vector<dns::ResolveHandle> handles;
    for (int i = 0; i < 20; ++i) {
      handles.push_back((*resolver)->resolve(
          "h.test", dns::AddressPreference::Ipv6First,
          [&results](dns::ResolveResult r) { results.push_back(std::move(r)); }));
    }
    ASSERT_TRUE(runUntil(loop, [&] { return results.size() == 20; }, milliseconds(5000)));
    for (const dns::ResolveResult& r : results) {
      ASSERT_TRUE(r.ok()) << toString(r.status);
      EXPECT_EQ(r.addresses.size(), 2u);
      EXPECT_TRUE(r.addresses.front().isV6());
    }
    EXPECT_EQ((*server)->queryCount("h.test", "A"), 1);
    EXPECT_EQ((*server)->queryCount("h.test", "AAAA"), 1);

    std::optional<dns::ResolveResult> again;
    dns::ResolveHandle handle = (*resolver)->resolve(
        "h.test", dns::AddressPreference::Ipv4First,
        [&again](dns::ResolveResult r) { again = std::move(r); });
    ASSERT_TRUE(runUntil(loop, [&] { return again.has_value(); }, milliseconds(1000)));
    EXPECT_TRUE(again->from_cache);
    EXPECT_TRUE(again->addresses.front().isV4());
  }
  EXPECT_EQ(loop.watcherCount(), 0u);
  EXPECT_EQ(loop.armedTimerCount(), 0u);
}

// c-ares keeps its own clock for query timeouts; the loop's timers only tell it when to look.
// That they do is shown by the count: every try of both queries (A and AAAA) was sent, the
// second ones only after a timer woke c-ares, and then the lookup ended as a timeout.
TEST(LoopEventDriverTest, SilentServerTimesOutOnTheEventLoop) {
  dns::testing::SilentDnsServer silent;
  EventLoop loop;
  LoopEventDriver driver(loop);
  dns::DnsCache cache;
  dns::ResolverOptions options;
  options.servers = silent.serverAddress();
  options.timeout = milliseconds(100);
  options.tries = 2;
  auto resolver = dns::CaresResolver::create(driver, cache, options, nullptr);
  ASSERT_TRUE(resolver.ok()) << resolver.status();
  std::optional<dns::ResolveResult> result;
  dns::ResolveHandle handle = (*resolver)->resolve(
      "slow.test", dns::AddressPreference::Ipv4First,
      [&result](dns::ResolveResult r) { result = std::move(r); });
  // A bound for a hang only (the lookup's own bound is maxLookupTime(), 300 ms here).
  ASSERT_TRUE(runUntil(loop, [&] { return result.has_value(); }, milliseconds(10000)));
  EXPECT_EQ(result->status, dns::ResolveStatus::Timeout);
  EXPECT_EQ(silent.receivedCount(), 2 * options.tries) << "2 queries x " << options.tries
                                                        << " tries";
  EXPECT_EQ(loop.armedTimerCount(), 0u);
}

}  // namespace
}  // namespace shadowrelay::relay
