// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/udp_stats.h"

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

UdpStats numbered(uint64_t scale) {
  UdpStats s;
  uint64_t v = 1;
  for (const auto& f : UdpStats::fields()) s.*f.member = scale * v++;
  return s;
}

TEST(UdpStatsTest, AddSumsEveryField) {
  UdpStats a = numbered(1);
  a.add(numbered(100));
  uint64_t v = 1;
  for (const auto& f : UdpStats::fields()) {
    EXPECT_EQ(a.*f.member, 101 * v++) << f.key;
  }
}

// tests/e2e and tests/bench/udp_bench.py parse this line (README.md shows it).
TEST(UdpStatsTest, SummaryKeepsItsFormat) {
  EXPECT_EQ(numbered(1).summary(),
            "packets_in=1 packets_out=2 bytes_in=3 bytes_out=4 dropped{open=5 replay=6 "
            "address=7 refused=8 over_quota=9 resolve=10 send=11 too_big=12 fragment=13 "
            "foreign=14 stale_timestamp=15 replayed_packet_id=16 session=17 trial_budget=18 "
            "user_associations=19 memory=20 revoked=21 gost_queue=22 gost_malformed=23 "
            "over_rate=24} gost{in=25 out=26} associations=27 evictions=28 "
            "expirations=29");
}

}  // namespace
}  // namespace shadowrelay::relay
