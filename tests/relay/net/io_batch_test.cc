// SPDX-License-Identifier: Apache-2.0
#include "relay/net/io_batch.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

struct Pair {
  Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0); }
  ~Pair() {
    if (fd[0] >= 0) ::close(fd[0]);
    if (fd[1] >= 0) ::close(fd[1]);
  }
  int fd[2] = {-1, -1};
};

std::map<uint64_t, long> results(const std::vector<IoBatch::Completion>& done) {
  std::map<uint64_t, long> out;
  for (const auto& c : done) out[c.token] = c.result;
  return out;
}

class IoBatchTest : public ::testing::TestWithParam<bool> {};

TEST_P(IoBatchTest, SendsAndReceivesManySocketsInOneRun) {
  IoBatch batch(GetParam(), 8);
  constexpr int kPairs = 20;  // more than the ring holds: submitted in pieces
  std::vector<Pair> pairs(kPairs);
  std::vector<std::string> messages;
  for (int i = 0; i < kPairs; ++i) messages.push_back("message " + std::to_string(i));
  for (int i = 0; i < kPairs; ++i) {
    batch.addSend(pairs[i].fd[0], messages[i].data(), messages[i].size(), i);
  }
  auto sent = results(batch.run());
  ASSERT_EQ(sent.size(), static_cast<size_t>(kPairs));
  for (int i = 0; i < kPairs; ++i) EXPECT_EQ(sent[i], static_cast<long>(messages[i].size()));

  std::vector<std::array<char, 64>> bufs(kPairs);
  for (int i = 0; i < kPairs; ++i) batch.addRecv(pairs[i].fd[1], bufs[i].data(), 64, 100 + i);
  auto got = results(batch.run());
  ASSERT_EQ(got.size(), static_cast<size_t>(kPairs));
  for (int i = 0; i < kPairs; ++i) {
    ASSERT_EQ(got[100 + i], static_cast<long>(messages[i].size()));
    EXPECT_EQ(std::string(bufs[i].data(), messages[i].size()), messages[i]);
  }
}

TEST_P(IoBatchTest, NothingToReadIsEagainAndEofIsZero) {
  IoBatch batch(GetParam());
  Pair idle;
  Pair closed;
  ::close(closed.fd[0]);
  closed.fd[0] = -1;
  char a[8];
  char b[8];
  batch.addRecv(idle.fd[1], a, sizeof(a), 1);
  batch.addRecv(closed.fd[1], b, sizeof(b), 2);
  auto got = results(batch.run());
  EXPECT_EQ(got[1], -EAGAIN);  // never parks in the ring
  EXPECT_EQ(got[2], 0);
}

TEST_P(IoBatchTest, FullSocketTakesPartOfASendThenEagain) {
  IoBatch batch(GetParam());
  Pair pair;
  std::vector<char> big(4 << 20, 'x');
  batch.addSend(pair.fd[0], big.data(), big.size(), 7);
  batch.addSend(pair.fd[0], big.data(), big.size(), 8);
  auto got = results(batch.run());
  EXPECT_GT(got[7], 0);
  EXPECT_LT(got[7], static_cast<long>(big.size()));
  EXPECT_EQ(got[8], -EAGAIN);
}

TEST_P(IoBatchTest, SendToAClosedPeerFailsWithoutSigpipe) {
  IoBatch batch(GetParam());
  Pair pair;
  ::close(pair.fd[1]);
  pair.fd[1] = -1;
  const char msg[] = "x";
  batch.addSend(pair.fd[0], msg, 1, 3);
  auto got = results(batch.run());
  EXPECT_EQ(got[3], -EPIPE);
}

INSTANTIATE_TEST_SUITE_P(UringAndPlain, IoBatchTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "uring" : "plain"; });

TEST(IoBatchUring, OneSubmissionForManyOperations) {
  IoBatch batch(true, 64);
  if (!batch.usingUring()) GTEST_SKIP() << "io_uring unavailable on this kernel";
  std::vector<Pair> pairs(16);
  const char msg[] = "hello";
  for (int i = 0; i < 16; ++i) batch.addSend(pairs[i].fd[0], msg, 5, i);
  const uint64_t before = batch.syscalls();
  EXPECT_EQ(batch.run().size(), 16u);
  EXPECT_EQ(batch.syscalls() - before, 1u);
}

}  // namespace
}  // namespace shadowrelay::relay
