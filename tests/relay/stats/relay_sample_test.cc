// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/relay_sample.h"

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

TEST(RelaySampleTest, DnsOutcomesHaveDistinctLabels) {
  DnsSample dns;
  ASSERT_EQ(dns.results.size(), static_cast<size_t>(DnsOutcome::kCount));
  EXPECT_STREQ(dnsOutcomeLabel(DnsOutcome::Ok), "ok");
  EXPECT_STREQ(dnsOutcomeLabel(DnsOutcome::Timeout), "timeout");
  EXPECT_STREQ(dnsOutcomeLabel(DnsOutcome::Internal), "internal");
  for (size_t i = 0; i < dns.results.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      EXPECT_STRNE(dnsOutcomeLabel(static_cast<DnsOutcome>(i)),
                   dnsOutcomeLabel(static_cast<DnsOutcome>(j)));
    }
  }
}

TEST(RelaySampleTest, WorkerSampleAddSumsEverything) {
  WorkerSample a;
  WorkerSample b;
  b.tcp.accepted = 1;
  b.udp.evictions = 2;
  b.users["u"].udp_packets_down = 3;
  b.users["u"].closed[static_cast<size_t>(CloseReason::Done)] = 4;
  b.retired_users.refused_over_limit = 5;
  b.dns.results[static_cast<size_t>(DnsOutcome::NoData)] = 6;
  b.dns.cache_misses = 7;
  b.dns.lookup_seconds.observe(0.002);
  b.connection_bytes.observe(100);
  b.connection_seconds.observe(2);
  b.probe_bytes.observe(10);
  b.tcp_active = 8;
  b.udp_associations_active = 9;
  a.add(b);
  a.add(b);
  EXPECT_EQ(a.tcp.accepted, 2u);
  EXPECT_EQ(a.udp.evictions, 4u);
  EXPECT_EQ(a.users["u"].udp_packets_down, 6u);
  EXPECT_EQ(a.users["u"].closed[static_cast<size_t>(CloseReason::Done)], 8u);
  EXPECT_EQ(a.retired_users.refused_over_limit, 10u);
  EXPECT_EQ(a.dns.results[static_cast<size_t>(DnsOutcome::NoData)], 12u);
  EXPECT_EQ(a.dns.cache_misses, 14u);
  EXPECT_EQ(a.dns.lookup_seconds.count(), 2u);
  EXPECT_EQ(a.connection_bytes.count(), 2u);
  EXPECT_EQ(a.connection_seconds.count(), 2u);
  EXPECT_EQ(a.probe_bytes.count(), 2u);
  EXPECT_EQ(a.tcp_active, 16u);
  EXPECT_EQ(a.udp_associations_active, 18u);
}

TEST(RelaySampleTest, UserTrafficAddSumsEveryField) {
  UserTraffic a;
  UserTraffic b;
  uint64_t v = 1;
  for (const auto& f : UserTraffic::fields()) b.*f.member = v++;
  a.add(b);
  a.add(b);
  v = 1;
  for (const auto& f : UserTraffic::fields()) {
    EXPECT_EQ(a.*f.member, 2 * v++) << f.key;
  }
}

}  // namespace
}  // namespace shadowrelay::relay
