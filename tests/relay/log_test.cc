// SPDX-License-Identifier: Apache-2.0
#include "relay/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::relay {
namespace {

/// What SR_LOG lines written while `write` runs put on stderr (fd 2, redirected to a file).
template <typename Fn>
std::string capturedStderr(Fn write) {
  testing::TempDir dir;
  const std::string path = dir.file("stderr");
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(file, 0);
  ::dup2(file, 2);
  ::close(file);
  write();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  return testing::readText(path);
}

// A target host name as a client could send it (SOCKS5 and Shadowsocks allow any byte): a
// newline and a forged line, a terminal escape, a NUL that would cut a C string short.
const std::string kHostile = std::string("evil\n2026-01-01T00:00:00.000Z I main: forged\x1b[2J\r") +
                             std::string(1, '\0') + "tail\x7f";

TEST(LogTest, ALineNeverCarriesARawControlByte) {
  const std::string out = capturedStderr([] { SR_LOG(Warn, "target %s refused", kHostile); });
  const std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << out;
  for (const char c : lines[0]) {
    const auto byte = static_cast<unsigned char>(c);
    EXPECT_FALSE(byte < 0x20 || byte == 0x7f) << "raw control byte " << int{byte} << ": " << out;
  }
  EXPECT_TRUE(absl::StrContains(lines[0], R"(evil\x0a2026-01-01)")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], R"(\x1b[2J\x0d\x00tail\x7f refused)")) << lines[0];
}

TEST(LogTest, EscapedQuotesEverythingButPrintableAscii) {
  EXPECT_EQ(log::escaped("example.com"), "example.com");
  EXPECT_EQ(log::escaped(std::string("a\nb\x1b\xff\0z", 7)), R"(a\nb\x1b\xff\x00z)");
  EXPECT_EQ(log::escaped("say \"hi\""), R"(say \"hi\")");
}

TEST(LogTest, OrdinaryTextIsUnchanged) {
  const std::string out =
      capturedStderr([] { SR_LOG(Info, "listening on %s (%d workers)", "[::1]:8388", 2); });
  EXPECT_TRUE(absl::StrContains(out, " I main: listening on [::1]:8388 (2 workers)\n")) << out;
}

}  // namespace
}  // namespace shadowrelay::relay
