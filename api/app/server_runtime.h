// SPDX-License-Identifier: Apache-2.0
#pragma once
// The composition root of `shadowrelay server|local|tunnel`: it builds the crypto providers,
// the user registry, the metrics exporter, the workers and their listeners, the user wiring and
// the control API, runs the main thread's supervisor loop, and takes it all down again. The
// members are declared in start order; stop() tears them down in the reverse order.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "api/app/replay_filters.h"
#include "api/app/sample_hub.h"
#include "api/app/server_users.h"
#include "api/control/control_server.h"
#include "api/metrics/metrics_exporter.h"
#include "api/users/etcd_user_store.h"
#include "api/users/user_registry.h"
#include "crypto/providers.h"
#include "crypto/salt_store_2022.h"
#include "dns/dns_cache.h"
#include "relay/config.h"
#include "relay/context/relay_env.h"
#include "relay/event/worker_pool.h"
#include "relay/host_addresses.h"
#include "relay/acl/acl.h"
#include "relay/net/ip_networks.h"
#include "relay/net/preauth_limits.h"
#include "relay/net/socket.h"
#include "relay/plugin/sip003_plugin.h"
#include "relay/upstream/upstream_balancer.h"
#include "relay/worker/worker.h"

namespace shadowrelay::api::app {

/// Process exit codes of a role.
inline constexpr int kExitConfig = 2;   // the configuration is wrong (the message names the field)
inline constexpr int kExitRuntime = 1;  // something could not start (a port in use, ...)

/// The exit code for an error of ServerRuntime::start(): kExitConfig for INVALID_ARGUMENT.
int exitCodeFor(const absl::Status& status);

/// Owns every part of a running role. Not thread-safe: start(), run() and stop() belong to the
/// main thread.
class ServerRuntime {
 public:
  explicit ServerRuntime(relay::Config config);
  /// stop(), if start() ran.
  ~ServerRuntime();
  ServerRuntime(const ServerRuntime&) = delete;
  ServerRuntime& operator=(const ServerRuntime&) = delete;

  /// Validates the configuration and starts everything: listeners bound (port 0 picks a free
  /// one), workers running, users published, metrics and the control API serving; then logs one
  /// line "ready: tcp=ADDR udp=ADDR control=ADDR metrics=ADDR" (the parts that run; with a
  /// server's --plugin, tcp= is the plugin's public port, once it listens). With
  /// --check-config it validates only and writes nothing. Errors: INVALID_ARGUMENT for the
  /// configuration, others for what could not start; stop() undoes what had started.
  absl::Status start();
  /// The main loop: relays until SIGINT/SIGTERM, then drains (stop accepting, sessions finish up
  /// to --drain-timeout; a second signal ends them at once). Call after start() succeeded.
  void run();
  /// Takes everything down in reverse start order and logs the totals. Idempotent.
  void stop();

  /// After start(): the address of each TCP listener's port (one per listen address).
  const std::vector<relay::SocketAddress>& boundAddresses() const { return addresses_; }

 private:
  class Supervisor;

  absl::Status loadSecrets();
  absl::Status prepareEnv();
  /// --allow-insecure-ciphers: a warning at start naming the stream methods in use.
  void warnInsecureCiphers() const;
  /// local/tunnel: the servers resolved, behind the plugin if there is one, in the balancer.
  absl::Status startUpstreams();
  absl::Status openRegistry();
  /// --etcd-endpoints: the shared user store (before the registry, which reads it).
  absl::Status openSharedStore();
  absl::Status startExporter();
  absl::Status bindListeners();
  /// The sockets of one listen address for every worker, appended to tcp_fds_ and udp_fds_
  /// only if all of them bound. Port 0 becomes the port they got.
  absl::Status bindAddress(relay::SocketAddress& address, bool any_port);
  absl::Status startWorkers();
  /// After bindListeners(): a client's TCP goes to the plugin from here on; then it starts.
  absl::Status startPlugin();
  absl::Status startControl();
  /// Saves the replay filters to the state directory (a warning if that fails).
  void saveReplayFilters();
  /// The traffic of the workers to the registry (data quotas, the API's counters).
  void forwardTraffic();
  control::RelayStatus status() const;
  /// SIGHUP: the --acl file read again (kept as it was when the new one is bad).
  void reload();
  std::string readyLine() const;

  relay::RelayEnv env_;
  const relay::Config& config_ = env_.config;
  bool server_ = false;
  bool tcp_ = false;
  bool udp_ = false;       // UDP relayed at all (local -u: through SOCKS5 associations)
  bool udp_port_ = false;  // a shared UDP port (server -u, tunnel -u)
  bool udp2022_ = false;   // server -u with a 2022 method: one UDP socket, on worker 0
  bool print_uri_ = false;
  bool control_wanted_ = false;
  std::string control_token_;
  std::string metrics_token_;
  std::string public_host_;
  std::vector<relay::SocketAddress> addresses_;
  absl::Time started_at_;
  bool started_ = false;
  bool stopped_ = false;

  // Start order. stop() releases them from the bottom up.
  std::unique_ptr<crypto::CryptoProviders> providers_;
  std::unique_ptr<ReplayFilters> replay_filters_;  // server only
  std::unique_ptr<crypto::SaltStore2022> salt_store_2022_;
  std::unique_ptr<dns::DnsCache> dns_cache_;
  std::vector<relay::Upstream> upstream_list_;  // local/tunnel: until startUpstreams()
  std::unique_ptr<relay::UpstreamBalancer> upstreams_;  // local/tunnel: the servers
  std::unique_ptr<relay::HostAddresses> host_addresses_;  // server: refused as targets
  std::unique_ptr<relay::IpNetworks> forbidden_targets_;  // server: forbidden_ip
  std::unique_ptr<relay::AclSlot> acl_;                   // --acl, replaced on SIGHUP
  std::unique_ptr<relay::SourceLimiter> source_limiter_;  // server: unauthenticated per source
  std::unique_ptr<users::EtcdUserStore> shared_store_;  // --etcd-endpoints; before registry_
  std::unique_ptr<users::UserRegistry> registry_;
  std::unique_ptr<metrics::MetricsExporter> exporter_;
  std::unique_ptr<SampleHub> hub_;
  std::unique_ptr<relay::WorkerPool> pool_;
  std::vector<std::vector<relay::Fd>> tcp_fds_;  // per worker, until the worker takes them
  std::vector<std::vector<relay::Fd>> udp_fds_;
  std::unique_ptr<relay::Sip003Plugin> plugin_;  // --plugin
  std::vector<std::unique_ptr<relay::Worker>> workers_;  // made and freed on their loops
  std::unique_ptr<ServerUsers> server_users_;
  std::unique_ptr<control::ControlServer> control_;
};

}  // namespace shadowrelay::api::app
