// SPDX-License-Identifier: Apache-2.0
// Bounds on unauthenticated connections: sources are IPv4 /32s and IPv6 /64s, counts come back
// when slots are released (or destroyed, or moved over), and the gate says which bound refused.
#include "relay/net/preauth_limits.h"

#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

SocketAddress at(const char* ip, uint16_t port = 1000) {
  auto address = parseSocketAddress(ip, port);
  EXPECT_TRUE(address.ok()) << ip;
  return *address;
}

TEST(SourceLimiter, SourcesAreIpv4AddressesAndIpv6Slash64s) {
  using Key = SourceLimiter::Key;
  EXPECT_EQ(SourceLimiter::keyOf(at("10.0.0.1", 1)), SourceLimiter::keyOf(at("10.0.0.1", 2)));
  EXPECT_NE(SourceLimiter::keyOf(at("10.0.0.1")), SourceLimiter::keyOf(at("10.0.0.2")));
  // An IPv4 client of a dual-stack listener is the same source as over IPv4.
  EXPECT_EQ(SourceLimiter::keyOf(at("::ffff:10.0.0.1")), SourceLimiter::keyOf(at("10.0.0.1")));
  // One /64: the interface identifier does not matter; the next /64 is another source.
  EXPECT_EQ(SourceLimiter::keyOf(at("2001:db8:1:2::1")),
            SourceLimiter::keyOf(at("2001:db8:1:2:ffff:ffff:ffff:ffff")));
  EXPECT_NE(SourceLimiter::keyOf(at("2001:db8:1:2::1")),
            SourceLimiter::keyOf(at("2001:db8:1:3::1")));
  EXPECT_EQ(SourceLimiter::keyOf(SocketAddress{}), (Key{0, 0}));
}

TEST(SourceLimiter, RefusesPastTheBoundAndCountsBack) {
  SourceLimiter limiter(2);
  const auto a = SourceLimiter::keyOf(at("2001:db8::1"));
  const auto b = SourceLimiter::keyOf(at("2001:db8::2"));  // the same /64
  const auto c = SourceLimiter::keyOf(at("192.0.2.7"));
  EXPECT_TRUE(limiter.tryAcquire(a));
  EXPECT_TRUE(limiter.tryAcquire(b));
  EXPECT_FALSE(limiter.tryAcquire(a));
  EXPECT_TRUE(limiter.tryAcquire(c));  // others are not affected
  EXPECT_EQ(limiter.countForTest(at("2001:db8::99")), 2u);
  limiter.release(b);
  EXPECT_TRUE(limiter.tryAcquire(a));
  limiter.release(a);
  limiter.release(a);
  limiter.release(c);
  EXPECT_EQ(limiter.countForTest(at("2001:db8::1")), 0u);
  EXPECT_EQ(limiter.countForTest(at("192.0.2.7")), 0u);
  EXPECT_TRUE(limiter.tryAcquire(SourceLimiter::Key{0, 0}));  // no family: not limited
}

TEST(PreauthGate, PerWorkerAndPerSourceBoundsAndSlotLifetimes) {
  SourceLimiter sources(2);
  PreauthGate gate(3, &sources);
  PreauthGate::Verdict verdict;
  PreauthSlot s1 = gate.admit(at("198.51.100.1"), &verdict);
  EXPECT_EQ(verdict, PreauthGate::Verdict::Admitted);
  PreauthSlot s2 = gate.admit(at("198.51.100.1"), &verdict);
  EXPECT_TRUE(s2.held());
  PreauthSlot refused = gate.admit(at("198.51.100.1"), &verdict);
  EXPECT_FALSE(refused.held());
  EXPECT_EQ(verdict, PreauthGate::Verdict::SourceFull);
  PreauthSlot s3 = gate.admit(at("198.51.100.2"), &verdict);
  EXPECT_TRUE(s3.held());
  EXPECT_EQ(gate.held(), 3u);
  PreauthSlot full = gate.admit(at("198.51.100.3"), &verdict);
  EXPECT_FALSE(full.held());
  EXPECT_EQ(verdict, PreauthGate::Verdict::WorkerFull);
  EXPECT_EQ(sources.countForTest(at("198.51.100.3")), 0u);  // nothing taken when refused

  s1.release();  // authenticated
  s1.release();  // twice is once
  EXPECT_EQ(gate.held(), 2u);
  EXPECT_EQ(sources.countForTest(at("198.51.100.1")), 1u);
  {
    PreauthSlot moved = std::move(s2);
    EXPECT_FALSE(s2.held());
    EXPECT_EQ(gate.held(), 2u);
  }  // destroyed: given back
  EXPECT_EQ(gate.held(), 1u);
  EXPECT_EQ(sources.countForTest(at("198.51.100.1")), 0u);
  s3 = PreauthSlot();  // assigned over: given back
  EXPECT_EQ(gate.held(), 0u);
  EXPECT_EQ(sources.countForTest(at("198.51.100.2")), 0u);
}

TEST(PreauthGate, ZeroAndNoLimiterMeanNoBound) {
  PreauthGate gate(0, nullptr);
  PreauthGate::Verdict verdict;
  std::vector<PreauthSlot> slots;
  for (int i = 0; i < 1000; ++i) {
    slots.push_back(gate.admit(at("203.0.113.9"), &verdict));
    ASSERT_TRUE(slots.back().held());
  }
  EXPECT_EQ(gate.held(), 1000u);
  slots.clear();
  EXPECT_EQ(gate.held(), 0u);
}

}  // namespace
}  // namespace shadowrelay::relay
