// SPDX-License-Identifier: Apache-2.0
#include "relay/log.h"

#include <atomic>
#include <cstdio>
#include <ctime>

#include <sys/time.h>

namespace shadowrelay::relay::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::Info)};
thread_local std::string t_name = "main";

char levelChar(Level level) {
  switch (level) {
    case Level::Error:
      return 'E';
    case Level::Warn:
      return 'W';
    case Level::Info:
      return 'I';
    case Level::Debug:
      return 'D';
  }
  return '?';
}

}  // namespace

void setLevel(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool enabled(Level level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void setThreadName(std::string name) { t_name = std::move(name); }

void emit(Level level, const std::string& text) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm utc{};
  gmtime_r(&tv.tv_sec, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &utc);
  // One fprintf per line: stdio locks the stream, so lines from workers do not interleave.
  std::fprintf(stderr, "%s.%03dZ %c %s: %s\n", stamp, static_cast<int>(tv.tv_usec / 1000),
               levelChar(level), t_name.c_str(), text.c_str());
}

}  // namespace shadowrelay::relay::log
