// SPDX-License-Identifier: Apache-2.0
#pragma once
// What every worker reads and nobody writes after start-up.

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/salt_filter.h"
#include "crypto/salt_store_2022.h"
#include "dns/dns_cache.h"
#include "dns/resolver.h"
#include "relay/acl/acl.h"
#include "relay/config.h"
#include "relay/net/preauth_limits.h"
#include "relay/context/worker_budgets.h"
#include "relay/net/socket.h"
#include "relay/stats/relay_sample.h"
#include "relay/target_policy.h"

namespace shadowrelay::relay {

class UpstreamBalancer;

/// The key a client (local, tunnel) speaks with. The server's keys are its users (UserTable).
struct Credentials {
  const crypto::MethodInfo* method = nullptr;
  const crypto::AeadProvider* provider = nullptr;
  crypto::MasterKey master;  // 2022: the user's PSK (behind identity keys: the uPSK)
  /// 2022 with SIP023 identity headers (a password iPSK_1:...:uPSK): every key, `master` last.
  /// Empty otherwise.
  std::vector<crypto::MasterKey> key_chain;

  /// What a 2022 request names: iPSK_1..iPSK_k (one identity header each), then the user's key.
  std::span<const crypto::MasterKey> requestKeys() const {
    return key_chain.empty() ? std::span<const crypto::MasterKey>(&master, 1)
                             : std::span<const crypto::MasterKey>(key_chain);
  }
};

/// Owned by the runtime that starts the workers; outlives them. Read-only on the workers.
struct RelayEnv {
  Config config;
  Credentials credentials;
  crypto::SaltFilter* salt_filter = nullptr;  // server: TCP client and own salts (2017 methods)
  crypto::SaltFilter* udp_salt_filter = nullptr;  // server: UDP packet salts (2017 methods)
  crypto::SaltStore2022* salt_store_2022 = nullptr;  // server: 2022 request salts (exact)
  dns::DnsCache* dns_cache = nullptr;
  dns::AddressPreference preference = dns::AddressPreference::Ipv4First;
  std::optional<crypto::SocksAddress> tunnel_target;  // tunnel: -L
  std::chrono::milliseconds first_data_wait{50};      // local/tunnel: bundle the first data
  std::chrono::seconds idle_timeout{300};
  std::chrono::seconds handshake_timeout{60};
  std::chrono::seconds connect_timeout{10};
  bool io_uring = true;  // batch the relay's reads and writes through io_uring when available
  std::chrono::seconds udp_timeout{300};    // --udp-timeout; 30 s for port 53 targets
  size_t udp_max_associations = 16384;      // --udp-max-associations
  std::optional<SocketAddress> udp_server;  // local -u: the server's UDP address
  /// local/tunnel: the servers (relay/upstream), their credentials and health; `credentials`
  /// above are the first server's. Thread-safe.
  UpstreamBalancer* upstreams = nullptr;
  /// Receives each worker's counters once a second (the metrics exporter); may be null.
  RelayObserver* observer = nullptr;
  /// Server: this host's interface addresses, refused as targets; may be null (tests).
  const HostAddresses* host_addresses = nullptr;
  /// Server: forbidden_ip, refused even with --allow-private; null when none.
  const IpNetworks* forbidden_targets = nullptr;
  /// --acl: the file in force (replaced on SIGHUP); null without one.
  const AclSlot* acl = nullptr;
  /// Server: unauthenticated connections per source, shared by the workers; null: no bound.
  SourceLimiter* source_limiter = nullptr;

  /// Each worker's budgets (--udp-trial-budget, --udp-source-trial-budget, --udp-queue-bytes).
  BudgetOptions budgetOptions() const {
    return {.trials_per_second = static_cast<double>(config.udp_trial_budget),
            .source_trials_per_second = static_cast<double>(config.udp_source_trial_budget),
            .queue_bytes = static_cast<size_t>(config.udp_queue_bytes)};
  }

  /// Where a server may connect or send for a client (--allow-private, host_addresses,
  /// forbidden_ip).
  TargetPolicy targetPolicy() const {
    return TargetPolicy(config.allow_private, host_addresses, forbidden_targets,
                        acl != nullptr ? acl->get() : nullptr);
  }
};

}  // namespace shadowrelay::relay
