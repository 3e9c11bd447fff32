// SPDX-License-Identifier: Apache-2.0
#pragma once
// How the relay counts a lookup's dns::ResolveStatus (relay/stats knows nothing of dns).

#include "dns/resolver.h"
#include "relay/stats/relay_sample.h"

namespace shadowrelay::relay {

/// The DnsOutcome of `status`: the same name (its label equals dns::toString(status)).
constexpr DnsOutcome dnsOutcomeOf(dns::ResolveStatus status) {
  switch (status) {
    case dns::ResolveStatus::Ok:
      return DnsOutcome::Ok;
    case dns::ResolveStatus::NxDomain:
      return DnsOutcome::NxDomain;
    case dns::ResolveStatus::NoData:
      return DnsOutcome::NoData;
    case dns::ResolveStatus::Timeout:
      return DnsOutcome::Timeout;
    case dns::ResolveStatus::ServerFailure:
      return DnsOutcome::ServerFailure;
    case dns::ResolveStatus::InvalidName:
      return DnsOutcome::InvalidName;
    case dns::ResolveStatus::Cancelled:
      return DnsOutcome::Cancelled;
    case dns::ResolveStatus::Internal:
      break;
  }
  return DnsOutcome::Internal;
}

}  // namespace shadowrelay::relay
