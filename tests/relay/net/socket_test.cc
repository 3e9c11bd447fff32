// SPDX-License-Identifier: Apache-2.0
// Listening sockets and the open-file limit (issue 15 §4).
#include "relay/net/socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

// The kernel reports a listener's backlog bound as tcpi_sacked (tcp_get_info, LISTEN state).
uint32_t listenBacklogOf(int fd) {
  tcp_info info{};
  socklen_t len = sizeof(info);
  EXPECT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len), 0);
  return info.tcpi_sacked;
}

TEST(ListenTcp, BacklogIsTheKernelsMaximumUnlessGiven) {
  const int somaxconn = kernelMaxBacklog();
  ASSERT_GT(somaxconn, 0);
  auto loopback = parseSocketAddress("127.0.0.1", 0);
  ASSERT_TRUE(loopback.ok());
  auto fd = listenTcp(*loopback, ListenOptions{});
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(listenBacklogOf(fd->get()), static_cast<uint32_t>(somaxconn));
  ListenOptions small;
  small.backlog = 16;
  fd = listenTcp(*loopback, small);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(listenBacklogOf(fd->get()), 16u);
}

TEST(FileLimit, SetsTheSoftLimitAndNamesNofileAboveTheHardOne) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_GT(saved.rlim_max, 300u);
  auto set = setFileLimit(300);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(*set, 300u);
  rlimit now{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_EQ(now.rlim_cur, 300u);
  EXPECT_EQ(now.rlim_max, saved.rlim_max);  // the hard limit is left alone
  set = setFileLimit(0);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(*set, saved.rlim_max);
  if (saved.rlim_max != RLIM_INFINITY) {
    // Above the hard limit: only with CAP_SYS_RESOURCE; without it the error names the option.
    const uint64_t above = static_cast<uint64_t>(saved.rlim_max) + 1;
    set = setFileLimit(above);
    if (set.ok()) {
      EXPECT_EQ(*set, above);
    } else {
      EXPECT_TRUE(absl::StrContains(set.status().message(), "nofile")) << set.status();
      ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &now), 0);
      EXPECT_EQ(now.rlim_max, saved.rlim_max);
    }
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
}

}  // namespace
}  // namespace shadowrelay::relay
