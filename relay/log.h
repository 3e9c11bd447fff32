// SPDX-License-Identifier: Apache-2.0
#pragma once
// Process log: one line per event on stderr, "2026-11-23T10:00:00.123Z W worker-1: text".
// Written by hand because Debian bookworm's Abseil (20220623) predates absl/log. Never pass a
// secret (password, key, decrypted payload) to it. A line never carries a raw control byte:
// emit() writes them as \xNN, so text from the network cannot forge lines or drive a terminal;
// print names that clients sent through escaped() as well (it also escapes non-ASCII bytes).

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::relay::log {

enum class Level { Error = 0, Warn = 1, Info = 2, Debug = 3 };

void setLevel(Level level);
bool enabled(Level level);
/// Names the calling thread in its log lines ("main", "worker-0").
void setThreadName(std::string name);
/// Writes one line; control bytes (0x00-0x1f, 0x7f) in `text` become \xNN.
void emit(Level level, const std::string& text);
/// `text` with everything but printable ASCII escaped (C-style: \n, \", \xNN), for names and
/// other strings a peer chose (target host names, SOCKS5 hosts).
std::string escaped(absl::string_view text);

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
