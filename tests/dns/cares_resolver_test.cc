// SPDX-License-Identifier: Apache-2.0
// dns::CaresResolver against a real DNS server: dnsmasq on 127.0.0.1, driven by a poll() loop.
#include "dns/cares_resolver.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dns/dns_cache.h"
#include "dns/resolver_observer.h"
#include "gtest/gtest.h"
#include "tests/dns/dnsmasq_server.h"
#include "tests/dns/poll_event_driver.h"

namespace shadowrelay::dns {
namespace {

using std::chrono::milliseconds;
using testing::DnsmasqServer;
using testing::PollEventDriver;
using testing::SilentDnsServer;

constexpr milliseconds kWaitLimit(5000);

const IpAddress kA = *IpAddress::parse("10.0.0.1");
const IpAddress kH4 = *IpAddress::parse("10.0.0.2");
const IpAddress kH6 = *IpAddress::parse("fd00::2");

class CountingObserver final : public ResolverObserver {
 public:
  void onQuery() override { ++queries; }
  void onCacheHit() override { ++hits; }
  void onCacheMiss() override { ++misses; }
  void onFailure(ResolveStatus kind) override { ++failures[kind]; }
  void onSuccess() override { ++successes; }
  void onLookupLatency(std::chrono::nanoseconds latency) override {
    ++latencies;
    EXPECT_GE(latency.count(), 0);
  }

  int queries = 0;
  int hits = 0;
  int misses = 0;
  int latencies = 0;
  int successes = 0;
  std::map<ResolveStatus, int> failures;
};

std::vector<std::string> defaultRecords() {
  return {
      "--address=/a.test/10.0.0.1",
      "--host-record=h.test,10.0.0.2,fd00::2",
      "--host-record=v6.test,fd00::6",
      "--txt-record=txt.test,hello",
      "--address=/c.test/10.0.0.3",
      "--address=/l1.test/10.1.0.1",
      "--address=/l2.test/10.1.0.2",
      "--address=/l3.test/10.1.0.3",
  };
}

class CaresResolverTest : public ::testing::Test {
 protected:
  CaresResolverTest() {
    cache_options_.capacity = 100;
    cache_options_.shards = 1;
    cache_options_.min_ttl = milliseconds(100);
    cache_options_.max_ttl = std::chrono::seconds(60);
    cache_options_.negative_ttl = std::chrono::seconds(1);
  }

  void startDns(std::vector<std::string> records = defaultRecords(), uint16_t port = 0) {
    DnsmasqServer::Options o;
    o.records = std::move(records);
    o.local_ttl = 1;
    o.port = port;
    auto server = DnsmasqServer::start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    dns_ = std::move(*server);
  }

  void makeResolver(ResolverOptions options) {
    resolver_.reset();
    cache_ = std::make_unique<DnsCache>(cache_options_);
    auto resolver = CaresResolver::create(driver_, *cache_, options, &observer_);
    ASSERT_TRUE(resolver.ok()) << resolver.status();
    resolver_ = std::move(*resolver);
  }

  void makeResolver() {
    ResolverOptions options;
    options.servers = dns_->serverAddress();
    options.timeout = milliseconds(500);
    options.tries = 2;
    makeResolver(options);
  }

  /// Resolves and runs the loop until the callback (bounded); checks it was not called inline.
  ResolveResult resolveAndWait(absl::string_view host,
                               AddressPreference pref = AddressPreference::Ipv4First) {
    std::optional<ResolveResult> out;
    ResolveHandle handle = resolver_->resolve(host, pref, [&out](ResolveResult r) {
      out = std::move(r);
    });
    EXPECT_FALSE(out.has_value()) << "callback ran inside resolve()";
    EXPECT_TRUE(driver_.runUntil([&] { return out.has_value(); }, kWaitLimit)) << host;
    EXPECT_FALSE(handle.pending());
    if (!out) {
      ResolveResult timed_out;
      timed_out.status = ResolveStatus::Internal;
      return timed_out;
    }
    return *out;
  }

  // Destroyed in reverse: resolver, cache, dnsmasq, then the loop.
  PollEventDriver driver_;
  std::unique_ptr<DnsmasqServer> dns_;
  DnsCache::Options cache_options_;
  std::unique_ptr<DnsCache> cache_;
  CountingObserver observer_;
  std::unique_ptr<CaresResolver> resolver_;
};

TEST_F(CaresResolverTest, ResolvesARecords) {
  startDns();
  makeResolver();
  ResolveResult r = resolveAndWait("a.test");
  ASSERT_TRUE(r.ok()) << toString(r.status);
  EXPECT_EQ(r.addresses, std::vector<IpAddress>{kA});
  EXPECT_FALSE(r.from_cache);
  EXPECT_EQ(dns_->queryCount("a.test", "A"), 1);
  EXPECT_EQ(dns_->queryCount("a.test", "AAAA"), 1);
  EXPECT_EQ(observer_.queries, 1);
  EXPECT_EQ(observer_.misses, 1);
  EXPECT_EQ(observer_.latencies, 1);
}

TEST_F(CaresResolverTest, ResolvesAaaaRecordsInPreferenceOrder) {
  startDns();
  makeResolver();
  ResolveResult v4first = resolveAndWait("h.test", AddressPreference::Ipv4First);
  ASSERT_TRUE(v4first.ok()) << toString(v4first.status);
  EXPECT_EQ(v4first.addresses, (std::vector<IpAddress>{kH4, kH6}));
  EXPECT_EQ(resolveAndWait("h.test", AddressPreference::Ipv6First).addresses,
            (std::vector<IpAddress>{kH6, kH4}));
  EXPECT_EQ(resolveAndWait("h.test", AddressPreference::Ipv6Only).addresses,
            std::vector<IpAddress>{kH6});
  EXPECT_EQ(resolveAndWait("h.test", AddressPreference::Ipv4Only).addresses,
            std::vector<IpAddress>{kH4});
  ResolveResult v6 = resolveAndWait("v6.test", AddressPreference::Ipv4First);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6.addresses, std::vector<IpAddress>{*IpAddress::parse("fd00::6")});
  // v6.test has no A record: IPv4 only is NODATA.
  EXPECT_EQ(resolveAndWait("v6.test", AddressPreference::Ipv4Only).status,
            ResolveStatus::NoData);
  EXPECT_EQ(dns_->queryCount("h.test", "AAAA"), 1) << "one lookup serves every preference";
}

TEST_F(CaresResolverTest, RepeatLookupsWithinTtlSendNoQuery) {
  startDns();
  makeResolver();
  ASSERT_TRUE(resolveAndWait("h.test").ok());
  const int after_first = dns_->totalQueryCount();
  EXPECT_EQ(after_first, 2);  // A + AAAA.
  for (const char* name : {"h.test", "H.TEST", "h.test."}) {
    ResolveResult again = resolveAndWait(name);
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(again.from_cache) << name;
    EXPECT_EQ(again.addresses, (std::vector<IpAddress>{kH4, kH6}));
  }
  std::optional<ResolveResult> sync = resolver_->resolveCached("h.test", AddressPreference::Ipv4First);
  ASSERT_TRUE(sync.has_value());
  EXPECT_TRUE(sync->from_cache);
  EXPECT_EQ(dns_->totalQueryCount(), after_first);
  EXPECT_EQ(observer_.hits, 4);
  EXPECT_EQ(observer_.queries, 1);
  EXPECT_EQ(observer_.successes, 5);  // the query's answer, 3 cache hits, resolveCached
  EXPECT_TRUE(observer_.failures.empty());
}

TEST_F(CaresResolverTest, RequeriesAfterTtlAndSeesTheNewAnswer) {
  startDns({"--host-record=moving.test,10.0.0.7"});
  makeResolver();
  const auto t0 = std::chrono::steady_clock::now();
  ResolveResult first = resolveAndWait("moving.test");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.addresses, std::vector<IpAddress>{*IpAddress::parse("10.0.0.7")});

  // Same port, new answer. Within the 1 s TTL the cache still answers, without a query.
  const uint16_t port = dns_->port();
  dns_.reset();
  startDns({"--host-record=moving.test,10.0.0.8"}, port);
  if (std::chrono::steady_clock::now() - t0 < milliseconds(900)) {
    ResolveResult cached = resolveAndWait("moving.test");
    EXPECT_TRUE(cached.from_cache);
    EXPECT_EQ(cached.addresses, first.addresses);
    EXPECT_EQ(dns_->totalQueryCount(), 0);
  }
  driver_.runUntil([&] { return std::chrono::steady_clock::now() - t0 > milliseconds(1100); },
                   kWaitLimit);
  ResolveResult fresh = resolveAndWait("moving.test");
  ASSERT_TRUE(fresh.ok()) << toString(fresh.status);
  EXPECT_FALSE(fresh.from_cache);
  EXPECT_EQ(fresh.addresses, std::vector<IpAddress>{*IpAddress::parse("10.0.0.8")});
  EXPECT_EQ(dns_->queryCount("moving.test", "A"), 1);
}

TEST_F(CaresResolverTest, NxDomainIsCachedNegativelyThenRetried) {
  startDns();
  makeResolver();
  ResolveResult first = resolveAndWait("missing.test");
  EXPECT_EQ(first.status, ResolveStatus::NxDomain);
  EXPECT_FALSE(first.from_cache);
  const int queries = dns_->queryCount("missing.test");
  EXPECT_EQ(queries, 2);

  ResolveResult second = resolveAndWait("missing.test");
  EXPECT_EQ(second.status, ResolveStatus::NxDomain);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(dns_->queryCount("missing.test"), queries);

  driver_.runFor(milliseconds(1100));  // negative_ttl = 1 s.
  ResolveResult third = resolveAndWait("missing.test");
  EXPECT_EQ(third.status, ResolveStatus::NxDomain);
  EXPECT_FALSE(third.from_cache);
  EXPECT_EQ(dns_->queryCount("missing.test"), 2 * queries);
  EXPECT_EQ(observer_.failures[ResolveStatus::NxDomain], 3);
  EXPECT_EQ(observer_.successes, 0);
}

TEST_F(CaresResolverTest, NameWithoutAddressesIsNoDataAndCached) {
  startDns();
  makeResolver();
  EXPECT_EQ(resolveAndWait("txt.test").status, ResolveStatus::NoData);
  ResolveResult again = resolveAndWait("txt.test");
  EXPECT_EQ(again.status, ResolveStatus::NoData);
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(dns_->queryCount("txt.test"), 2);
}

TEST_F(CaresResolverTest, RefusedIsServerFailureAndNotCached) {
  startDns();
  makeResolver();
  ResolveResult r = resolveAndWait("outside.example");
  EXPECT_EQ(r.status, ResolveStatus::ServerFailure);
  EXPECT_FALSE(resolveAndWait("outside.example").from_cache);
  EXPECT_EQ(observer_.queries, 2);
  EXPECT_EQ(observer_.failures[ResolveStatus::ServerFailure], 2);
}

TEST_F(CaresResolverTest, SilentServerTimesOutWithinTheConfiguredBound) {
  SilentDnsServer silent;
  ResolverOptions options;
  options.servers = silent.serverAddress();
  options.timeout = milliseconds(150);
  options.tries = 2;
  makeResolver(options);
  ASSERT_EQ(resolver_->maxLookupTime(), milliseconds(450));  // 150 + 300.

  const auto start = std::chrono::steady_clock::now();
  ResolveResult r = resolveAndWait("slow.test");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, ResolveStatus::Timeout);
  EXPECT_GE(elapsed, milliseconds(400));
  EXPECT_LE(elapsed, resolver_->maxLookupTime() + milliseconds(400));
  EXPECT_GE(silent.receivedCount(), 2);
  EXPECT_EQ(observer_.failures[ResolveStatus::Timeout], 1);
  EXPECT_EQ(resolver_->inflightLookupsForTest(), 0u);
  EXPECT_EQ(cache_->size(), 0u) << "timeouts are not cached";
}

TEST_F(CaresResolverTest, HundredConcurrentLookupsShareOneQuery) {
  startDns();
  makeResolver();
  int answered = 0;
  std::vector<ResolveHandle> handles;
  for (int i = 0; i < 100; ++i) {
    handles.push_back(resolver_->resolve("c.test", AddressPreference::Ipv4First,
                                         [&answered](ResolveResult r) {
                                           EXPECT_TRUE(r.ok());
                                           EXPECT_FALSE(r.from_cache);
                                           ++answered;
                                         }));
  }
  EXPECT_EQ(resolver_->inflightLookupsForTest(), 1u);
  ASSERT_TRUE(driver_.runUntil([&] { return answered == 100; }, kWaitLimit));
  EXPECT_EQ(dns_->queryCount("c.test", "A"), 1);
  EXPECT_EQ(dns_->queryCount("c.test", "AAAA"), 1);
  EXPECT_EQ(observer_.queries, 1);
  EXPECT_EQ(observer_.misses, 100);
  EXPECT_EQ(observer_.successes, 100);  // one per caller, though one lookup
}

TEST_F(CaresResolverTest, EvictsLeastRecentlyUsedNameAtCapacity) {
  cache_options_.capacity = 2;
  startDns();
  makeResolver();
  for (const char* name : {"l1.test", "l2.test", "l3.test"}) {
    ASSERT_TRUE(resolveAndWait(name).ok()) << name;
  }
  EXPECT_EQ(cache_->size(), 2u);
  EXPECT_TRUE(resolveAndWait("l3.test").from_cache);
  EXPECT_TRUE(resolveAndWait("l2.test").from_cache);
  ResolveResult evicted = resolveAndWait("l1.test");
  ASSERT_TRUE(evicted.ok());
  EXPECT_FALSE(evicted.from_cache);
  EXPECT_EQ(dns_->queryCount("l1.test", "A"), 2);
  // l1 came back in and pushed out l3, the least recently used.
  EXPECT_TRUE(resolveAndWait("l2.test").from_cache);
  EXPECT_FALSE(resolveAndWait("l3.test").from_cache);
}

TEST_F(CaresResolverTest, InvalidNamesFailWithoutAQuery) {
  startDns();
  makeResolver();
  const std::string long_label(64, 'a');
  const std::string long_name = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                std::string(63, 'c') + "." + std::string(63, 'd');
  for (const std::string& name :
       {std::string(), std::string("."), std::string("a..test"), std::string("bad name.test"),
        std::string("x/y.test"), std::string("caf\xc3\xa9.test"), long_label + ".test",
        long_name}) {
    ResolveResult r = resolveAndWait(name);
    EXPECT_EQ(r.status, ResolveStatus::InvalidName) << name;
    EXPECT_FALSE(resolver_->resolveCached(name, AddressPreference::Ipv4First)->ok());
  }
  EXPECT_EQ(dns_->totalQueryCount(), 0);
  EXPECT_EQ(observer_.queries, 0);
  EXPECT_EQ(observer_.hits + observer_.misses, 0);
}

TEST_F(CaresResolverTest, IpLiteralsBypassDns) {
  startDns();
  makeResolver();
  ResolveResult v4 = resolveAndWait("10.1.2.3");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4.addresses, std::vector<IpAddress>{*IpAddress::parse("10.1.2.3")});
  EXPECT_FALSE(v4.from_cache);
  EXPECT_EQ(resolveAndWait("::1").addresses, std::vector<IpAddress>{*IpAddress::parse("::1")});
  EXPECT_EQ(resolveAndWait("[2001:db8::1]").addresses,
            std::vector<IpAddress>{*IpAddress::parse("2001:db8::1")});
  EXPECT_EQ(resolveAndWait("10.1.2.3", AddressPreference::Ipv6Only).status,
            ResolveStatus::NoData);
  std::optional<ResolveResult> sync = resolver_->resolveCached("192.0.2.9", AddressPreference::Ipv4First);
  ASSERT_TRUE(sync && sync->ok());
  EXPECT_EQ(dns_->totalQueryCount(), 0);
  EXPECT_EQ(observer_.queries + observer_.hits + observer_.misses, 0);
  EXPECT_EQ(observer_.successes, 0);  // literals are not lookups
}

TEST_F(CaresResolverTest, CancellationDropsTheCallback) {
  startDns();
  makeResolver();
  bool cancelled_called = false;
  bool other_called = false;
  ResolveHandle cancelled = resolver_->resolve(
      "h.test", AddressPreference::Ipv4First, [&](ResolveResult) { cancelled_called = true; });
  ResolveHandle other = resolver_->resolve("h.test", AddressPreference::Ipv4First,
                                           [&](ResolveResult r) {
                                             EXPECT_TRUE(r.ok());
                                             other_called = true;
                                           });
  EXPECT_TRUE(cancelled.pending());
  cancelled.cancel();
  EXPECT_FALSE(cancelled.pending());
  ASSERT_TRUE(driver_.runUntil([&] { return other_called; }, kWaitLimit));
  driver_.runFor(milliseconds(20));
  EXPECT_FALSE(cancelled_called);

  // A lookup whose every caller went away still completes and fills the cache.
  {
    ResolveHandle dropped = resolver_->resolve(
        "a.test", AddressPreference::Ipv4First, [&](ResolveResult) { cancelled_called = true; });
  }
  ASSERT_TRUE(driver_.runUntil([&] { return resolver_->inflightLookupsForTest() == 0; },
                               kWaitLimit));
  driver_.runFor(milliseconds(20));
  EXPECT_FALSE(cancelled_called);
  std::optional<ResolveResult> cached = resolver_->resolveCached("a.test", AddressPreference::Ipv4First);
  ASSERT_TRUE(cached.has_value());
  EXPECT_TRUE(cached->ok());

  // Answers ready without a query (cache hit, literal) are dropped as well.
  {
    ResolveHandle hit = resolver_->resolve("a.test", AddressPreference::Ipv4First,
                                           [&](ResolveResult) { cancelled_called = true; });
    ResolveHandle literal = resolver_->resolve("10.0.0.1", AddressPreference::Ipv4First,
                                               [&](ResolveResult) { cancelled_called = true; });
  }
  driver_.runFor(milliseconds(20));
  EXPECT_FALSE(cancelled_called);
}

TEST_F(CaresResolverTest, CallbackMayDestroyItsOwnHandleAndResolveAgain) {
  startDns();
  makeResolver();
  auto handle = std::make_unique<ResolveHandle>();
  ResolveHandle second;
  std::optional<ResolveResult> chained;
  *handle = resolver_->resolve("h.test", AddressPreference::Ipv4First, [&](ResolveResult r) {
    EXPECT_TRUE(r.ok());
    handle.reset();  // Destroys the handle whose callback this is.
    second = resolver_->resolve("h.test", AddressPreference::Ipv6First,
                                [&](ResolveResult again) { chained = std::move(again); });
  });
  ASSERT_TRUE(driver_.runUntil([&] { return chained.has_value(); }, kWaitLimit));
  EXPECT_TRUE(chained->from_cache);
  EXPECT_EQ(chained->addresses.front(), kH6);
}

TEST_F(CaresResolverTest, CancelAllFailsPendingLookupsWithCancelled) {
  SilentDnsServer silent;
  ResolverOptions options;
  options.servers = silent.serverAddress();
  options.timeout = milliseconds(1000);
  makeResolver(options);
  std::vector<ResolveStatus> statuses;
  ResolveHandle a = resolver_->resolve("x.test", AddressPreference::Ipv4First,
                                       [&](ResolveResult r) { statuses.push_back(r.status); });
  ResolveHandle b = resolver_->resolve("y.test", AddressPreference::Ipv4First,
                                       [&](ResolveResult r) { statuses.push_back(r.status); });
  driver_.runFor(milliseconds(20));
  ASSERT_TRUE(statuses.empty());
  resolver_->cancelAll();
  EXPECT_EQ(statuses, (std::vector<ResolveStatus>{ResolveStatus::Cancelled,
                                                  ResolveStatus::Cancelled}));
  EXPECT_EQ(resolver_->inflightLookupsForTest(), 0u);
  EXPECT_EQ(driver_.armedTimerCount(), 0u);
}

TEST_F(CaresResolverTest, DestroyingTheResolverDropsPendingCallbacks) {
  SilentDnsServer silent;
  ResolverOptions options;
  options.servers = silent.serverAddress();
  makeResolver(options);
  bool called = false;
  ResolveHandle handle = resolver_->resolve("x.test", AddressPreference::Ipv4First,
                                            [&](ResolveResult) { called = true; });
  driver_.runFor(milliseconds(20));
  EXPECT_GT(resolver_->watchedSocketsForTest(), 0u);
  resolver_.reset();
  EXPECT_FALSE(called);
  EXPECT_FALSE(handle.pending());
  EXPECT_EQ(driver_.watchCount(), 0u);
}

TEST_F(CaresResolverTest, HostsFileAnswersWithoutAQuery) {
  startDns();
  const std::string hosts = std::string(std::getenv("TEST_TMPDIR")) + "/hosts";
  {
    std::ofstream out(hosts);
    out << "# test hosts file\n10.9.8.7 myhost.test alias.test\nfd00::77 myhost.test\n";
  }
  ResolverOptions options;
  options.servers = dns_->serverAddress();
  options.hosts_file = hosts;
  makeResolver(options);
  ResolveResult r = resolveAndWait("myhost.test");
  ASSERT_TRUE(r.ok()) << toString(r.status);
  EXPECT_EQ(r.addresses, (std::vector<IpAddress>{*IpAddress::parse("10.9.8.7"),
                                                 *IpAddress::parse("fd00::77")}));
  EXPECT_TRUE(resolveAndWait("ALIAS.test").ok());
  // Names missing from the file fall through to DNS ("fb").
  EXPECT_TRUE(resolveAndWait("a.test").ok());
  EXPECT_EQ(dns_->queryCount("myhost.test"), 0);
  EXPECT_EQ(dns_->queryCount("alias.test"), 0);
  EXPECT_EQ(dns_->queryCount("a.test"), 2);
  // One hosts file per process: another is refused, a missing one too.
  ResolverOptions other = options;
  other.hosts_file = hosts + ".other";
  EXPECT_FALSE(CaresResolver::create(driver_, *cache_, other, nullptr).ok());
  ::unsetenv("CARES_HOSTS");
  ResolverOptions missing = options;
  missing.hosts_file = hosts + ".missing";
  auto refused = CaresResolver::create(driver_, *cache_, missing, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("cannot be read"), std::string::npos);
  ::unsetenv("CARES_HOSTS");
}

TEST_F(CaresResolverTest, LocalhostResolvesWithoutAQuery) {
  startDns();
  makeResolver();
  ResolveResult r = resolveAndWait("localhost");
  ASSERT_TRUE(r.ok()) << toString(r.status);
  const IpAddress loopback = *IpAddress::parse("127.0.0.1");
  EXPECT_NE(std::find(r.addresses.begin(), r.addresses.end(), loopback), r.addresses.end());
  EXPECT_EQ(dns_->totalQueryCount(), 0);
}

TEST_F(CaresResolverTest, RejectsBadOptions) {
  DnsCache cache;
  ResolverOptions bad_servers;
  bad_servers.servers = "not-an-ip";
  EXPECT_FALSE(CaresResolver::create(driver_, cache, bad_servers, nullptr).ok());
  ResolverOptions bad_tries;
  bad_tries.tries = 0;
  EXPECT_FALSE(CaresResolver::create(driver_, cache, bad_tries, nullptr).ok());
  ResolverOptions bad_lookups;
  bad_lookups.lookups = "fx";
  EXPECT_FALSE(CaresResolver::create(driver_, cache, bad_lookups, nullptr).ok());
  ResolverOptions ok;
  ok.servers = "1.1.1.1,127.0.0.1:5353,[::1]:53";
  auto resolver = CaresResolver::create(driver_, cache, ok, nullptr);
  ASSERT_TRUE(resolver.ok()) << resolver.status();
  EXPECT_EQ((*resolver)->maxLookupTime(), milliseconds(3 * 1500 * 3));
}

}  // namespace
}  // namespace shadowrelay::dns
