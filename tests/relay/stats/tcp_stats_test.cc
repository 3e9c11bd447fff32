// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/tcp_stats.h"

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

TEST(TcpStatsTest, AddSumsEveryFieldAndEveryReason) {
  TcpStats a;
  TcpStats b;
  uint64_t v = 1;
  for (const auto& f : TcpStats::fields()) {
    a.*f.member = v;
    b.*f.member = 100 * v++;
  }
  b.closed[static_cast<size_t>(CloseReason::Revoked)] = 7;
  a.add(b);
  v = 1;
  for (const auto& f : TcpStats::fields()) {
    EXPECT_EQ(a.*f.member, 101 * v++) << f.key;
  }
  EXPECT_EQ(a.closed[static_cast<size_t>(CloseReason::Revoked)], 7u);
}

TEST(TcpStatsTest, SummaryListsTheFieldsThenTheReasonsThatHappened) {
  TcpStats s;
  s.accepted = 5;
  s.bytes_to_remotes = 9;
  s.closed[static_cast<size_t>(CloseReason::Done)] = 3;
  s.closed[static_cast<size_t>(CloseReason::IdleTimeout)] = 1;
  s.refused_worker = 2;
  EXPECT_EQ(s.summary(),
            "accepted=5 active=0 accept_errors=0 refused{source=0 worker=2 no_fd=0} "
            "acl{bypass=0 proxy=0 block=0} auth_failed=0 replayed_salts=0 stale_timestamps=0 "
            "bad_addresses=0 "
            "bytes_from_clients=0 bytes_to_clients=0 bytes_from_remotes=0 bytes_to_remotes=9 "
            "closed{done=3 idle_timeout=1}");
}

}  // namespace
}  // namespace shadowrelay::relay
