// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/stats_macros.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "relay/stats/metric_families.h"
#include "relay/stats/relay_sample.h"
#include "relay/stats/tcp_stats.h"
#include "relay/stats/udp_stats.h"

namespace shadowrelay::relay {
namespace {

using Items = std::vector<std::pair<absl::string_view, uint64_t>>;

TEST(StatsMacrosTest, SummaryGroupsConsecutiveDottedKeys) {
  EXPECT_EQ(formatSummary(Items{}), "");
  EXPECT_EQ(formatSummary(Items{{"a", 1}, {"b", 2}}), "a=1 b=2");
  EXPECT_EQ(formatSummary(Items{{"a", 1}, {"g.x", 2}, {"g.y", 3}, {"b", 4}}), "a=1 g{x=2 y=3} b=4");
  EXPECT_EQ(formatSummary(Items{{"g.x", 2}, {"h.y", 3}}), "g{x=2} h{y=3}");
}

TEST(StatsMacrosTest, EveryFamilyIsDeclaredOnceWithAHelp) {
  std::set<std::string> names;
  for (size_t i = 1; i < static_cast<size_t>(Metric::kCount); ++i) {
    const MetricFamilyInfo& f = metricFamily(static_cast<Metric>(i));
    EXPECT_TRUE(absl::StartsWith(f.name, "shadowrelay_")) << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    EXPECT_TRUE(names.insert(std::string(f.name)).second) << f.name;
  }
  EXPECT_EQ(metricFamily(Metric::None).name, "");
}

/// The keys of a table are unique, and its fixed labels are well formed.
template <typename Stats>
void checkFields() {
  std::set<absl::string_view> keys;
  for (const FieldSpec<Stats>& f : Stats::fields()) {
    EXPECT_TRUE(keys.insert(f.key).second) << f.key;
    if (f.metric == Metric::None) {
      EXPECT_EQ(f.labels, "") << f.key;
    }
    if (!f.labels.empty()) {
      EXPECT_TRUE(absl::StrContains(f.labels, '=')) << f.key;
    }
  }
}

TEST(StatsMacrosTest, FieldKeysAreUniqueAndLabelsWellFormed) {
  checkFields<TcpStats>();
  checkFields<UdpStats>();
  checkFields<UserTraffic>();
  checkFields<DnsSample>();
  checkFields<WorkerSample>();
}

}  // namespace
}  // namespace shadowrelay::relay
