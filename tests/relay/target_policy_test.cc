// SPDX-License-Identifier: Apache-2.0
#include "relay/target_policy.h"

#include <arpa/inet.h>

#include <string>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

bool allowed(const std::string& ip) {
  sockaddr_storage ss{};
  if (inet_pton(AF_INET, ip.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    ss.ss_family = AF_INET;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, ip.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr), 1)
        << ip;
    ss.ss_family = AF_INET6;
  }
  return isPublicUnicast(reinterpret_cast<sockaddr*>(&ss));
}

TEST(TargetPolicyTest, RefusesNonPublicAddresses) {
  for (const char* ip :
       {"0.0.0.0", "0.1.2.3", "10.1.2.3", "100.64.0.1", "100.127.255.254", "127.0.0.1",
        "127.255.0.1", "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "192.0.0.8", "198.18.0.1", "224.0.0.1", "239.255.255.250", "240.0.0.1",
        "255.255.255.255", "::", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1",
        "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1"}) {
    EXPECT_FALSE(allowed(ip)) << ip;
  }
}

TEST(TargetPolicyTest, AllowsPublicUnicast) {
  for (const char* ip : {"1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.1", "172.15.0.1",
                         "172.32.0.1", "192.169.0.1", "223.255.255.254", "2001:4860:4860::8888",
                         "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"}) {
    EXPECT_TRUE(allowed(ip)) << ip;
  }
}

}  // namespace
}  // namespace shadowrelay::relay
