// SPDX-License-Identifier: Apache-2.0
#include "relay/plugin/plugin_process.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

using std::chrono::milliseconds;

// A shell script as the plugin: the process supervision does not care what it runs.
std::string writeScript(const std::string& name, const std::string& body) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), 0755);
  return path;
}

std::string scratch(const std::string& name) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  ::unlink(path.c_str());
  return path;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Polls `done` every 10 ms for up to 10 s.
template <typename Predicate>
bool eventually(Predicate done) {
  for (int i = 0; i < 1000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return done();
}

bool processGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

PluginProcessOptions optionsFor(const std::string& path) {
  PluginProcessOptions options;
  options.name = "test-plugin";
  options.path = path;
  options.first_backoff = milliseconds(20);
  options.max_backoff = milliseconds(80);
  options.kill_after = milliseconds(300);
  return options;
}

TEST(PluginProcessTest, EnvironmentReachesTheChildOverTheInheritedOne) {
  const std::string out = scratch("env.out");
  ::setenv("SS_REMOTE_HOST", "inherited", 1);
  PluginProcessOptions options = optionsFor(writeScript(
      "env.sh", "env > \"$OUT.tmp\"; mv \"$OUT.tmp\" \"$OUT\"; exec sleep 30\n"));
  options.env = {{"OUT", out}, {"SS_REMOTE_HOST", "192.0.2.1"}, {"SS_PLUGIN_OPTIONS", "a=b;c"}};
  auto process = PluginProcess::start(std::move(options));
  ::unsetenv("SS_REMOTE_HOST");
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(eventually([&] { return !readFile(out).empty(); }));
  const std::string env = readFile(out);
  EXPECT_TRUE(absl::StrContains(env, "\nSS_REMOTE_HOST=192.0.2.1\n")) << env;
  EXPECT_FALSE(absl::StrContains(env, "inherited")) << env;
  EXPECT_TRUE(absl::StrContains(env, "\nSS_PLUGIN_OPTIONS=a=b;c\n")) << env;
  EXPECT_TRUE(absl::StrContains(env, "\nPATH=")) << env;  // the rest is inherited
  EXPECT_EQ((*process)->restarts(), 0u);
}

TEST(PluginProcessTest, AnExitIsRestartedWithBackoffAndCounted) {
  const std::string runs = scratch("runs.log");
  PluginProcessOptions options = optionsFor(writeScript("exits.sh", "echo run >> \"$RUNS\"; exit 3\n"));
  options.env = {{"RUNS", runs}};
  auto process = PluginProcess::start(std::move(options));
  ASSERT_TRUE(process.ok()) << process.status();
  ASSERT_TRUE(eventually([&] { return (*process)->restarts() >= 4; }));
  (*process)->stop();
  const uint64_t restarts = (*process)->restarts();
  // Every run started was a run of the script, each restart after an exit; the last run may
  // have been stopped before it wrote its line.
  const std::string lines = readFile(runs);
  const auto written = static_cast<uint64_t>(std::count(lines.begin(), lines.end(), '\n'));
  EXPECT_GE(written, restarts);
  EXPECT_LE(written, restarts + 1);
  EXPECT_GE((*process)->exits(), restarts);
  // The backoff grows to its bound: at most 20+40+80+80... ms apart, never a busy loop.
  EXPECT_LT(restarts, 200u);
}

TEST(PluginProcessTest, StopSendsSigtermToTheGroup) {
  const std::string marker = scratch("term.out");
  // The shell traps SIGTERM; its `sleep` child is in the same group and gets it too.
  PluginProcessOptions options = optionsFor(writeScript(
      "term.sh", "trap 'echo term > \"$MARK\"; exit 0' TERM\n"
                 "while :; do sleep 0.05; done\n"));
  options.env = {{"MARK", marker}};
  options.kill_after = milliseconds(5000);
  auto process = PluginProcess::start(std::move(options));
  ASSERT_TRUE(process.ok()) << process.status();
  const pid_t pid = (*process)->pid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::getpgid(pid), pid);  // its own process group
  std::this_thread::sleep_for(milliseconds(100));
  const auto before = std::chrono::steady_clock::now();
  (*process)->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, milliseconds(4000));  // no SIGKILL wait
  EXPECT_EQ(readFile(marker), "term\n");
  EXPECT_TRUE(processGone(pid));
  // Helpers SIGKILLed with it are reaped by whoever inherits them: allow for that.
  EXPECT_TRUE(eventually([pid] { return ::kill(-pid, 0) != 0 && errno == ESRCH; }))
      << "a process of its group is left";
  EXPECT_EQ((*process)->restarts(), 0u);  // a stop is not an exit to restart from
}

TEST(PluginProcessTest, SigkillAfterTheBoundWhenSigtermIsIgnored) {
  PluginProcessOptions options =
      optionsFor(writeScript("stubborn.sh", "trap '' TERM\nwhile :; do sleep 0.05; done\n"));
  auto process = PluginProcess::start(std::move(options));
  ASSERT_TRUE(process.ok()) << process.status();
  const pid_t pid = (*process)->pid();
  std::this_thread::sleep_for(milliseconds(100));
  const auto before = std::chrono::steady_clock::now();
  (*process)->stop();
  const auto took = std::chrono::steady_clock::now() - before;
  EXPECT_GE(took, milliseconds(250));  // it waited for kill_after (300 ms)
  EXPECT_LT(took, milliseconds(3000));
  EXPECT_TRUE(processGone(pid));
  // Helpers SIGKILLed with it are reaped by whoever inherits them: allow for that.
  EXPECT_TRUE(eventually([pid] { return ::kill(-pid, 0) != 0 && errno == ESRCH; }))
      << "a process of its group is left";
}

TEST(PluginProcessTest, AProgramThatCannotRunExitsWith127AndIsRetried) {
  auto process = PluginProcess::start(optionsFor("/nonexistent/plugin"));
  ASSERT_TRUE(process.ok()) << process.status();  // execve fails in the child
  EXPECT_TRUE(eventually([&] { return (*process)->exits() >= 2; }));
}

TEST(PluginProcessTest, EscapeLineKeepsTextAndEscapesControlBytes) {
  EXPECT_EQ(PluginProcess::escapeLine("listening at 127.0.0.1:80"), "listening at 127.0.0.1:80");
  EXPECT_EQ(PluginProcess::escapeLine("red \x1b[31mX\x7f\r"), "red \\x1b[31mX\\x7f");
  EXPECT_EQ(PluginProcess::escapeLine(std::string("a\0b\tc", 5)), "a\\x00b\\x09c");
  EXPECT_EQ(PluginProcess::escapeLine("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 stays
}

}  // namespace
}  // namespace shadowrelay::relay
