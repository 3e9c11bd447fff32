// SPDX-License-Identifier: Apache-2.0
#pragma once
// Process log: one line per event on stderr, "2026-11-23T10:00:00.123Z W worker-1: text".
// Written by hand because Debian bookworm's Abseil (20220623) predates absl/log. Never pass a
// secret (password, key, decrypted payload) to it.

#include <string>

#include "absl/strings/str_format.h"

namespace shadowrelay::relay::log {

enum class Level { Error = 0, Warn = 1, Info = 2, Debug = 3 };

void setLevel(Level level);
bool enabled(Level level);
/// Names the calling thread in its log lines ("main", "worker-0").
void setThreadName(std::string name);
void emit(Level level, const std::string& text);

template <typename... Args>
void write(Level level, const absl::FormatSpec<Args...>& format, const Args&... args) {
  emit(level, absl::StrFormat(format, args...));
}

}  // namespace shadowrelay::relay::log

#define SR_LOG(level, ...)                                                        \
  do {                                                                           \
    if (::shadowrelay::relay::log::enabled(::shadowrelay::relay::log::Level::level)) \
      ::shadowrelay::relay::log::write(::shadowrelay::relay::log::Level::level,  \
                                       __VA_ARGS__);                             \
  } while (0)
