// SPDX-License-Identifier: Apache-2.0
#include "api/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace shadowrelay::api::metrics {

namespace {

absl::StatusOr<std::string> readFile(const char* path) {
  std::ifstream in(path);
  if (!in) {
    return absl::UnavailableError(absl::StrCat(path, ": cannot be read"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Field n (1-based, as in proc(5)) of /proc/self/stat. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last ')'.
absl::StatusOr<uint64_t> statField(absl::string_view stat, size_t n) {
  const size_t close = stat.rfind(')');
  if (close == absl::string_view::npos || n < 3) {
    return absl::InternalError("/proc/self/stat: unexpected format");
  }
  const std::vector<absl::string_view> fields =
      absl::StrSplit(stat.substr(close + 1), ' ', absl::SkipEmpty());
  uint64_t value = 0;
  if (n - 3 >= fields.size() || !absl::SimpleAtoi(fields[n - 3], &value)) {
    return absl::InternalError(absl::StrCat("/proc/self/stat: no field ", n));
  }
  return value;
}

absl::StatusOr<uint64_t> bootTime() {
  auto stat = readFile("/proc/stat");
  if (!stat.ok()) {
    return stat.status();
  }
  for (absl::string_view line : absl::StrSplit(*stat, '\n')) {
    uint64_t btime = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtoi(line, &btime)) {
      return btime;
    }
  }
  return absl::InternalError("/proc/stat: no btime");
}

absl::StatusOr<uint64_t> openFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    return absl::UnavailableError("/proc/self/fd: cannot be read");
  }
  uint64_t count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') {
      ++count;
    }
  }
  closedir(dir);
  return count > 0 ? count - 1 : 0;  // not the descriptor that read the directory
}

prometheus::MetricFamily gauge(std::string name, std::string help, double value) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = prometheus::MetricType::Gauge;
  f.metric.emplace_back();
  f.metric.back().gauge.value = value;
  return f;
}

}  // namespace

absl::StatusOr<ProcessStats> readProcessStats() {
  const auto stat = readFile("/proc/self/stat");
  if (!stat.ok()) {
    return stat.status();
  }
  const auto utime = statField(*stat, 14);
  const auto stime = statField(*stat, 15);
  const auto start_ticks = statField(*stat, 22);
  const auto vsize = statField(*stat, 23);
  const auto rss_pages = statField(*stat, 24);
  for (const auto* field : {&utime, &stime, &start_ticks, &vsize, &rss_pages}) {
    if (!field->ok()) {
      return field->status();
    }
  }
  const auto btime = bootTime();
  if (!btime.ok()) {
    return btime.status();
  }
  const auto fds = openFds();
  if (!fds.ok()) {
    return fds.status();
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError("getrlimit(RLIMIT_NOFILE) failed");
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  if (ticks <= 0 || page <= 0) {
    return absl::InternalError("sysconf(_SC_CLK_TCK/_SC_PAGESIZE) failed");
  }
  ProcessStats s;
  s.cpu_seconds = static_cast<double>(*utime + *stime) / static_cast<double>(ticks);
  s.resident_bytes = *rss_pages * static_cast<uint64_t>(page);
  s.virtual_bytes = *vsize;
  s.open_fds = *fds;
  s.max_fds = limit.rlim_cur;
  s.start_time_seconds =
      static_cast<double>(*btime) + static_cast<double>(*start_ticks) / static_cast<double>(ticks);
  return s;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  const auto stats = readProcessStats();
  if (!stats.ok()) {
    return {};
  }
  std::vector<prometheus::MetricFamily> out;
  prometheus::MetricFamily cpu;
  cpu.name = "process_cpu_seconds_total";
  cpu.help = "Total user and system CPU time spent in seconds.";
  cpu.type = prometheus::MetricType::Counter;
  cpu.metric.emplace_back();
  cpu.metric.back().counter.value = stats->cpu_seconds;
  out.push_back(std::move(cpu));
  out.push_back(gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                      static_cast<double>(stats->resident_bytes)));
  out.push_back(gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                      static_cast<double>(stats->virtual_bytes)));
  out.push_back(gauge("process_open_fds", "Number of open file descriptors.",
                      static_cast<double>(stats->open_fds)));
  out.push_back(gauge("process_max_fds", "Maximum number of open file descriptors.",
                      static_cast<double>(stats->max_fds)));
  out.push_back(gauge("process_start_time_seconds",
                      "Start time of the process since unix epoch in seconds.",
                      stats->start_time_seconds));
  return out;
}

}  // namespace shadowrelay::api::metrics
