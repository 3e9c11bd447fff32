// SPDX-License-Identifier: Apache-2.0
#include "relay/log.h"

#include <atomic>
#include <cstdio>
#include <ctime>

#include <sys/time.h>

#include "absl/strings/escaping.h"

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

/// `text` with each control byte as \xNN (other bytes, UTF-8 included, as they are).
std::string withoutControlBytes(const std::string& text) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string escaped(absl::string_view text) { return absl::CHexEscape(text); }

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
               levelChar(level), t_name.c_str(), withoutControlBytes(text).c_str());
}

}  // namespace shadowrelay::relay::log
