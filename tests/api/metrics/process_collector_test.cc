// SPDX-License-Identifier: Apache-2.0
#include "api/metrics/process_collector.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ctime>
#include <set>
#include <string>

#include "gtest/gtest.h"

namespace shadowrelay::api::metrics {
namespace {

TEST(ProcessCollectorTest, ReadsThisProcess) {
  const auto stats = readProcessStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->resident_bytes, 1u << 20);
  EXPECT_GE(stats->virtual_bytes, stats->resident_bytes);
  EXPECT_GE(stats->cpu_seconds, 0);
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(stats->max_fds, limit.rlim_cur);
  // Started within the last hour, not in the future (a second of slack for rounding).
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(stats->start_time_seconds, now + 1);
  EXPECT_GT(stats->start_time_seconds, now - 3600);
}

TEST(ProcessCollectorTest, CountsOpenDescriptors) {
  const auto before = readProcessStats();
  ASSERT_TRUE(before.ok()) << before.status();
  const int a = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int b = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  const auto after = readProcessStats();
  close(a);
  close(b);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->open_fds, before->open_fds + 2);
}

TEST(ProcessCollectorTest, CpuTimeGrowsWithWork) {
  const auto before = readProcessStats();
  ASSERT_TRUE(before.ok());
  // Burn about 50 ms of CPU (bounded by the iteration count as well).
  volatile uint64_t sink = 0;
  const clock_t start = clock();
  for (uint64_t i = 0; i < 4'000'000'000ull && clock() - start < CLOCKS_PER_SEC / 20; ++i) {
    sink = sink + i;
  }
  const auto after = readProcessStats();
  ASSERT_TRUE(after.ok());
  EXPECT_GT(after->cpu_seconds, before->cpu_seconds);
}

TEST(ProcessCollectorTest, ExportsTheStandardNames) {
  const auto families = ProcessCollector().Collect();
  std::set<std::string> names;
  for (const auto& f : families) {
    names.insert(f.name);
    EXPECT_FALSE(f.help.empty()) << f.name;
    ASSERT_EQ(f.metric.size(), 1u) << f.name;
  }
  EXPECT_EQ(names,
            (std::set<std::string>{"process_cpu_seconds_total", "process_resident_memory_bytes",
                                   "process_virtual_memory_bytes", "process_open_fds",
                                   "process_max_fds", "process_start_time_seconds"}));
}

}  // namespace
}  // namespace shadowrelay::api::metrics
