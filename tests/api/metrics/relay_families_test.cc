// SPDX-License-Identifier: Apache-2.0
#include "api/metrics/relay_families.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/stats/tcp_stats.h"

namespace shadowrelay::api::metrics {
namespace {

const prometheus::MetricFamily* find(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

std::string label(const prometheus::ClientMetric& m, const std::string& name) {
  for (const auto& l : m.label) {
    if (l.name == name) {
      return l.value;
    }
  }
  return "<none>";
}

TEST(RelayFamiliesTest, CloseStatusesAreTheElevenLabelsOfEveryReason) {
  const std::vector<std::string> want = {"ok",          "timeout_idle",   "timeout_handshake",
                                         "auth_failed", "replay",         "target_private",
                                         "dns_failed",  "target_refused", "timeout_connect",
                                         "error",       "stale_timestamp"};
  EXPECT_EQ(closeStatuses(), want);
  for (size_t r = 0; r < static_cast<size_t>(relay::CloseReason::kCount); ++r) {
    const std::string status = relay::closeStatusLabel(static_cast<relay::CloseReason>(r));
    EXPECT_NE(std::find(want.begin(), want.end(), status), want.end()) << status;
  }
}

TEST(RelayFamiliesTest, NamesAreUniqueAndCountersEndInTotal) {
  const auto families = relayFamilies(relay::WorkerSample{}, true);
  std::vector<std::string> names;
  for (const auto& f : families) {
    names.push_back(f.name);
    EXPECT_EQ(f.name.rfind("shadowrelay_", 0), 0u) << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    const bool total = f.name.size() > 6 && f.name.substr(f.name.size() - 6) == "_total";
    EXPECT_EQ(total, f.type == prometheus::MetricType::Counter) << f.name;
    EXPECT_FALSE(f.metric.empty()) << f.name;
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
}

TEST(RelayFamiliesTest, HistogramsBecomeCumulativeWithAnInfBucket) {
  relay::WorkerSample s;
  s.probe_bytes.observe(0);
  s.probe_bytes.observe(20);
  s.probe_bytes.observe(20);
  s.probe_bytes.observe(1e6);
  const auto families = relayFamilies(s, true);
  const auto* probe = find(families, "shadowrelay_probe_bytes");
  ASSERT_NE(probe, nullptr);
  ASSERT_EQ(probe->type, prometheus::MetricType::Histogram);
  ASSERT_EQ(probe->metric.size(), 1u);
  const auto& h = probe->metric[0].histogram;
  ASSERT_EQ(h.bucket.size(), relay::probeBytesBounds().size() + 1);
  EXPECT_EQ(h.bucket[0].upper_bound, 0);
  EXPECT_EQ(h.bucket[0].cumulative_count, 1u);
  EXPECT_EQ(h.bucket[1].cumulative_count, 1u);  // le 16
  EXPECT_EQ(h.bucket[2].cumulative_count, 3u);  // le 32
  EXPECT_EQ(h.bucket[h.bucket.size() - 2].cumulative_count, 3u);
  EXPECT_TRUE(std::isinf(h.bucket.back().upper_bound));
  EXPECT_EQ(h.bucket.back().cumulative_count, 4u);
  EXPECT_EQ(h.sample_count, 4u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 1e6 + 40);
}

TEST(RelayFamiliesTest, RetiredUsersCountOnlyWhenFolded) {
  relay::WorkerSample s;
  s.users["a"].tcp_bytes_up = 3;
  s.retired_users.tcp_bytes_up = 40;  // a deleted user's
  auto tcpUpload = [](const std::vector<prometheus::MetricFamily>& families,
                      const std::string& user) -> double {
    const auto* bytes = find(families, "shadowrelay_data_bytes_total");
    if (bytes == nullptr) return -1;
    for (const auto& m : bytes->metric) {
      if (label(m, "proto") == "tcp" && label(m, "direction") == "upload" &&
          label(m, "user") == user) {
        return m.counter.value;
      }
    }
    return -1;
  };
  const auto per_user = relayFamilies(s, true);
  EXPECT_EQ(tcpUpload(per_user, "a"), 3);
  EXPECT_EQ(tcpUpload(per_user, ""), 0);  // the deleted user's series are gone, not moved
  EXPECT_EQ(find(per_user, "shadowrelay_data_bytes_total")->metric.size(), 8u);
  // Folded, the total must not drop when a user is deleted.
  EXPECT_EQ(tcpUpload(relayFamilies(s, false), ""), 43);
}

TEST(RelayFamiliesTest, FoldingKeepsTheSumsAndOnlyTheEmptyUser) {
  relay::WorkerSample s;
  s.users["a"].tcp_bytes_up = 3;
  s.users["b"].tcp_bytes_up = 4;
  s.users[""].tcp_bytes_up = 5;
  s.users["a"].closed[static_cast<size_t>(relay::CloseReason::Done)] = 2;
  s.users["b"].closed[static_cast<size_t>(relay::CloseReason::Shutdown)] = 1;

  const auto per_user = relayFamilies(s, true);
  const auto* bytes = find(per_user, "shadowrelay_data_bytes_total");
  ASSERT_NE(bytes, nullptr);
  EXPECT_EQ(bytes->metric.size(), 12u);

  const auto folded = relayFamilies(s, false);
  bytes = find(folded, "shadowrelay_data_bytes_total");
  ASSERT_NE(bytes, nullptr);
  ASSERT_EQ(bytes->metric.size(), 4u);
  for (const auto& m : bytes->metric) {
    EXPECT_EQ(label(m, "user"), "");
    if (label(m, "proto") == "tcp" && label(m, "direction") == "upload") {
      EXPECT_EQ(m.counter.value, 12);
    }
  }
  const auto* closed = find(folded, "shadowrelay_tcp_connections_closed_total");
  ASSERT_NE(closed, nullptr);
  ASSERT_EQ(closed->metric.size(), 11u);
  for (const auto& m : closed->metric) {
    EXPECT_EQ(m.counter.value, label(m, "status") == "ok" ? 3 : 0) << label(m, "status");
  }
}

TEST(RelayFamiliesTest, RateLimitedTimeIsInSecondsByUserAndDirection) {
  relay::WorkerSample s;
  s.users["a"].rate_limited_nanos = {1'500'000'000, 250'000'000};
  relay::WorkerSample other;  // a second worker's sample adds up
  other.users["a"].rate_limited_nanos = {500'000'000, 0};
  s.add(other);
  const auto families = relayFamilies(s, true);
  const auto* limited = find(families, "shadowrelay_user_rate_limited_seconds_total");
  ASSERT_NE(limited, nullptr);
  EXPECT_EQ(limited->type, prometheus::MetricType::Counter);
  ASSERT_EQ(limited->metric.size(), 4u);  // users "" and "a", up and down
  for (const auto& m : limited->metric) {
    const bool a = label(m, "user") == "a";
    const bool up = label(m, "direction") == "up";
    EXPECT_TRUE(up || label(m, "direction") == "down");
    EXPECT_DOUBLE_EQ(m.counter.value, !a ? 0 : up ? 2.0 : 0.25) << label(m, "user");
  }
}

}  // namespace
}  // namespace shadowrelay::api::metrics
