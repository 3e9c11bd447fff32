// SPDX-License-Identifier: Apache-2.0
#include "relay/dns_adapter/dns_outcome.h"

#include <set>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

TEST(DnsOutcomeTest, EveryStatusKeepsItsNameAsTheLabel) {
  constexpr dns::ResolveStatus kStatuses[] = {
      dns::ResolveStatus::Ok,
      dns::ResolveStatus::NxDomain,
      dns::ResolveStatus::NoData,
      dns::ResolveStatus::Timeout,
      dns::ResolveStatus::ServerFailure,
      dns::ResolveStatus::InvalidName,
      dns::ResolveStatus::Cancelled,
      dns::ResolveStatus::Internal,
  };
  std::set<DnsOutcome> seen;
  for (const dns::ResolveStatus s : kStatuses) {
    EXPECT_EQ(dnsOutcomeLabel(dnsOutcomeOf(s)), dns::toString(s));
    seen.insert(dnsOutcomeOf(s));
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(DnsOutcome::kCount));
}

}  // namespace
}  // namespace shadowrelay::relay
