// SPDX-License-Identifier: Apache-2.0
#include "relay/host_addresses.h"

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "dns/ip_address.h"
#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

dns::IpAddress ip(const char* text) { return *dns::IpAddress::parse(text); }

bool has(const HostAddresses& host, const char* text) {
  sockaddr_storage ss{};
  ip(text).toSockaddr(0, &ss);
  return host.contains(reinterpret_cast<const sockaddr*>(&ss));
}

TEST(HostAddressesTest, FixedSetAnswersBothFamiliesAndMappedForms) {
  const HostAddresses host({ip("192.0.2.7"), ip("2001:db8::7")});
  EXPECT_TRUE(has(host, "192.0.2.7"));
  EXPECT_TRUE(has(host, "::ffff:192.0.2.7"));
  EXPECT_TRUE(has(host, "2001:db8::7"));
  EXPECT_FALSE(has(host, "192.0.2.8"));
  EXPECT_FALSE(has(host, "2001:db8::8"));
  EXPECT_EQ(host.size(), 2u);
  EXPECT_EQ(host.generation(), 0u);
}

TEST(HostAddressesTest, ReplaceBumpsTheGenerationOnlyOnAChange) {
  HostAddresses host({ip("192.0.2.7")});
  host.replace({ip("192.0.2.7")});
  EXPECT_EQ(host.generation(), 0u);
  EXPECT_TRUE(has(host, "192.0.2.7"));  // this thread now caches generation 0
  host.replace({ip("192.0.2.8")});
  EXPECT_EQ(host.generation(), 1u);
  EXPECT_FALSE(has(host, "192.0.2.7"));  // the cached set is not used once stale
  EXPECT_TRUE(has(host, "192.0.2.8"));
}

TEST(HostAddressesTest, EachInstanceAnswersForItselfOnOneThread) {
  const HostAddresses a({ip("192.0.2.1")});
  const HostAddresses b({ip("192.0.2.2")});
  for (int i = 0; i < 3; ++i) {  // the per-thread cache switches owner each time
    EXPECT_TRUE(has(a, "192.0.2.1"));
    EXPECT_FALSE(has(a, "192.0.2.2"));
    EXPECT_TRUE(has(b, "192.0.2.2"));
    EXPECT_FALSE(has(b, "192.0.2.1"));
  }
}

TEST(HostAddressesTest, OtherThreadsSeeAReplacement) {
  HostAddresses host({ip("192.0.2.1")});
  std::atomic<bool> seen_old{false};
  std::atomic<bool> replaced{false};
  std::atomic<bool> seen_new{false};
  std::thread reader([&] {
    seen_old = has(host, "192.0.2.1");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!replaced.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    seen_new = has(host, "192.0.2.9") && !has(host, "192.0.2.1");
  });
  // Let the reader cache the first set before it changes.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!seen_old.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  host.replace({ip("192.0.2.9")});
  replaced = true;
  reader.join();
  EXPECT_TRUE(seen_old.load());
  EXPECT_TRUE(seen_new.load());
}

TEST(HostAddressesTest, WatchReadsTheInterfacesAndStopsPromptly) {
  const auto started = std::chrono::steady_clock::now();
  {
    auto host = HostAddresses::watch();
    ASSERT_NE(host, nullptr);
    EXPECT_TRUE(has(*host, "127.0.0.1"));  // lo is up in every network namespace we run in
    EXPECT_FALSE(has(*host, "192.0.2.255"));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
}

}  // namespace
}  // namespace shadowrelay::relay
