// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace shadowrelay::api::control {

struct ListenerStatus {
  std::string address;  // e.g. "0.0.0.0"
  uint16_t port = 0;
  std::string protocol;  // "tcp" or "udp"
  std::string user;      // the user of a dedicated port; empty for the shared port
};

/// What the relay reports for ServerService.GetStatus. The control server adds the number of
/// users (from the registry) and the crypto providers (from crypto::CryptoProviders).
struct RelayStatus {
  std::string version;
  absl::Duration uptime;
  uint32_t workers = 0;
  std::vector<ListenerStatus> listeners;
  uint64_t active_tcp_sessions = 0;
  uint64_t udp_associations = 0;
};

}  // namespace shadowrelay::api::control
