// SPDX-License-Identifier: Apache-2.0
#include "relay/resolve/resolve_command.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/dns/dnsmasq_server.h"

namespace shadowrelay::relay {
namespace {

struct CommandRun {
  int status;
  std::string out;
  std::string err;
};

CommandRun run(const std::vector<std::string>& args) {
  std::ostringstream out;
  std::ostringstream err;
  const int status = runResolveCommand(args, out, err);
  return CommandRun{status, out.str(), err.str()};
}

class ResolveCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dns::testing::DnsmasqServer::Options options;
    options.records = {"--host-record=h.test,10.0.0.2,fd00::2", "--address=/a.test/10.0.0.1"};
    auto server = dns::testing::DnsmasqServer::start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    dns_ = std::move(*server);
  }

  std::unique_ptr<dns::testing::DnsmasqServer> dns_;
};

TEST_F(ResolveCommandTest, PrintsAddressesThenTheCachedSecondLookup) {
  CommandRun r = run({"-d", dns_->serverAddress(), "h.test", "a.test", "192.0.2.7"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "hosts file: /etc/hosts\n")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "h.test: 10.0.0.2 fd00::2 (")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "a.test: 10.0.0.1 (")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "192.0.2.7: 192.0.2.7 (")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "h.test: second lookup from cache")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "a.test: second lookup from cache")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "192.0.2.7: second lookup literal, no query")) << r.out;
  EXPECT_EQ(dns_->queryCount("h.test"), 2);  // A + AAAA, once.
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST_F(ResolveCommandTest, HostsFileAnswersBeforeDns) {
  const std::string hosts = std::string(std::getenv("TEST_TMPDIR")) + "/resolve-hosts";
  {
    std::ofstream file(hosts);
    file << "10.7.7.7 h.test\n";  // dnsmasq says 10.0.0.2
  }
  CommandRun r = run({"-d", dns_->serverAddress(), "--hosts-file", hosts, "h.test", "a.test"});
  ::unsetenv("CARES_HOSTS");  // the process-wide name of the hosts file
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "hosts file: " + hosts + "\n")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "h.test: 10.7.7.7 (")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "a.test: 10.0.0.1 (")) << r.out;  // not in the file
  EXPECT_EQ(dns_->queryCount("h.test"), 0);
}

TEST_F(ResolveCommandTest, PreferIpv6WithInlineFlagValues) {
  CommandRun r = run({"--dns=" + dns_->serverAddress(), "-6", "--timeout-ms=500", "h.test"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "h.test: fd00::2 10.0.0.2 (")) << r.out;
}

TEST_F(ResolveCommandTest, FailuresExitWithOne) {
  CommandRun r = run({"-d", dns_->serverAddress(), "--timeout-ms", "300", "h.test", "missing.test",
               "bad..name"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "missing.test: error: nxdomain")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "missing.test: second lookup from cache")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "bad..name: error: invalid_name")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "bad..name: second lookup rejected, no query")) << r.out;
}

TEST(ResolveCommandUsageTest, BadUsageExitsWithTwoAndPrintsUsage) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {},
           {"-d"},
           {"--bogus", "a.test"},
           {"--timeout-ms", "0", "a.test"},
           {"--timeout-ms", "abc", "a.test"},
           {"--tries", "11", "a.test"},
           {"-d", "not-an-address", "a.test"},
       }) {
    CommandRun r = run(args);
    EXPECT_EQ(r.status, 2) << absl::StrJoin(args, " ");
    EXPECT_TRUE(absl::StrContains(r.err, "usage: shadowrelay resolve")) << r.err;
    EXPECT_TRUE(r.out.empty());
  }
}

TEST(ResolveCommandUsageTest, HelpGoesToStdout) {
  CommandRun r = run({"--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "usage: shadowrelay resolve"));
}

TEST(ResolveCommandUsageTest, AcceptsMainArgvWithTheSubcommand) {
  std::string program = "shadowrelay";
  std::string sub = "resolve";
  std::string flag = "--bogus";
  char* argv[] = {program.data(), sub.data(), flag.data(), nullptr};
  testing::internal::CaptureStderr();
  EXPECT_EQ(runResolveCommand(3, argv), 2);
  EXPECT_TRUE(absl::StrContains(testing::internal::GetCapturedStderr(), "unknown option --bogus"));
}

}  // namespace
}  // namespace shadowrelay::relay
