// SPDX-License-Identifier: Apache-2.0
#pragma once
// The servers of `local` and `tunnel` as the balancer holds them, made from the configuration
// (relay::clientServers): each with its own credentials and its address resolved at start.

#include <vector>

#include "absl/status/statusor.h"
#include "relay/config.h"
#include "relay/upstream/upstream_balancer.h"

namespace shadowrelay::crypto {
class CryptoProviders;
}

namespace shadowrelay::relay {

/// Every server of a validated client `config`, with its credentials; not resolved yet.
/// Errors name the entry ("server: ...", "servers[1]: ...").
absl::StatusOr<std::vector<Upstream>> makeUpstreams(const Config& config,
                                                    const crypto::CryptoProviders& providers);

/// Resolves each server's address now (blocking: start-up only) for UDP and the probes. With
/// `need_resolved` (UDP is relayed) a server that does not resolve is an error naming it;
/// otherwise a warning, and that server is reached through the workers' resolver only.
absl::Status resolveUpstreams(std::vector<Upstream>& upstreams, bool need_resolved);

}  // namespace shadowrelay::relay
