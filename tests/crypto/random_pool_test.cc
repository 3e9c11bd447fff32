// SPDX-License-Identifier: Apache-2.0
#include "crypto/random_pool.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace shadowrelay::crypto {
namespace {

std::string take(RandomPool& pool, size_t n) {
  std::string out(n, '\0');
  pool.take({reinterpret_cast<uint8_t*>(out.data()), out.size()});
  return out;
}

TEST(RandomPoolTest, SaltsAreDistinctAcrossRefills) {
  RandomPool pool;
  std::set<std::string> seen;
  // 32-byte salts: 128 per refill; ten refills.
  for (int i = 0; i < 1280; ++i) {
    EXPECT_TRUE(seen.insert(take(pool, 32)).second) << "salt " << i << " repeated";
  }
  EXPECT_EQ(pool.refills(), 10u);
  EXPECT_EQ(pool.available(), 0u);
}

TEST(RandomPoolTest, TakeStraddlingTheEndRefillsOnce) {
  RandomPool pool;
  // 24 does not divide 4096: take 170 (4080 bytes), leaving 16, then one that needs 8 more.
  std::set<std::string> seen;
  for (int i = 0; i < 170; ++i) seen.insert(take(pool, 24));
  EXPECT_EQ(pool.refills(), 1u);
  EXPECT_EQ(pool.available(), 16u);
  const std::string straddling = take(pool, 24);
  EXPECT_EQ(pool.refills(), 2u);
  EXPECT_EQ(pool.available(), RandomPool::kSize - 8);
  EXPECT_TRUE(seen.insert(straddling).second);
  // Both halves are random, not the zeros a handed-out byte is overwritten with.
  EXPECT_NE(straddling.substr(0, 16), std::string(16, '\0'));
  EXPECT_NE(straddling.substr(16), std::string(8, '\0'));
  EXPECT_TRUE(seen.insert(take(pool, 24)).second);
}

TEST(RandomPoolTest, LargeRequestsBypassThePool) {
  RandomPool pool;
  const std::string big = take(pool, RandomPool::kMaxTake + 1);
  EXPECT_EQ(pool.refills(), 0u);
  EXPECT_NE(big, std::string(big.size(), '\0'));
  take(pool, RandomPool::kMaxTake);
  EXPECT_EQ(pool.refills(), 1u);
  EXPECT_EQ(pool.available(), RandomPool::kSize - RandomPool::kMaxTake);
}

TEST(RandomPoolTest, EmptyTakeDoesNothing) {
  RandomPool pool;
  pool.take({});
  EXPECT_EQ(pool.refills(), 0u);
}

TEST(RandomPoolTest, ThreadsDrawDifferentSalts) {
  std::array<std::vector<std::string>, 4> drawn;
  std::vector<std::thread> threads;
  for (auto& out : drawn) {
    threads.emplace_back([&out] {
      for (int i = 0; i < 300; ++i) {
        std::string salt(32, '\0');
        saltBytes({reinterpret_cast<uint8_t*>(salt.data()), salt.size()});
        out.push_back(salt);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> seen;
  for (const auto& out : drawn) {
    for (const auto& salt : out) EXPECT_TRUE(seen.insert(salt).second);
  }
  EXPECT_EQ(seen.size(), 1200u);
}

// A fork() child must not hand out the bytes its parent buffered (they would be the parent's
// next salts too).
TEST(RandomPoolTest, ForkChildDiscardsTheParentsBuffer) {
  RandomPool pool;
  take(pool, 32);  // filled now; 4064 bytes buffered
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    const std::string salt = take(pool, 32);
    const bool refilled = pool.refills() == 2;
    const char ok = refilled ? 1 : 0;
    bool written = ::write(fds[1], &ok, 1) == 1;
    written = written && ::write(fds[1], salt.data(), salt.size()) ==
                             static_cast<ssize_t>(salt.size());
    ::_exit(written ? 0 : 1);
  }
  ::close(fds[1]);
  const std::string parent_salt = take(pool, 32);
  std::string child(33, '\0');
  size_t got = 0;
  while (got < child.size()) {
    const ssize_t n = ::read(fds[0], child.data() + got, child.size() - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(got, child.size());
  EXPECT_EQ(child[0], 1) << "the child did not refill";
  EXPECT_NE(child.substr(1), parent_salt);
  EXPECT_EQ(pool.refills(), 1u);  // the parent keeps its buffer
}

}  // namespace
}  // namespace shadowrelay::crypto
