// SPDX-License-Identifier: Apache-2.0
#pragma once
// The wiring from the user registry (control plane) to the workers (data plane): every new
// snapshot becomes an immutable UserTable that each worker swaps in on its own loop, and users'
// dedicated ports get listeners (TCP, and UDP with -u) on every worker, opened and closed at
// runtime, and the SIP003 plugin a user names in front of its port.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "api/control/relay_status.h"
#include "api/users/user_registry.h"
#include "relay/event/worker_pool.h"
#include "relay/net/socket.h"
#include "relay/plugin/sip003_plugin.h"
#include "relay/worker/worker.h"
#include "relay/users/user_table.h"

namespace shadowrelay::api::app {

/// Where and how the server listens.
struct ListenPlan {
  std::vector<relay::SocketAddress> addresses;
  bool tcp = true;
  bool udp = false;
  relay::ListenOptions options;
};

class ServerUsers {
 public:
  /// `workers` must have been created (and stay) on `pool`'s loops.
  ServerUsers(users::UserRegistry& registry, relay::WorkerPool& pool,
              std::vector<std::unique_ptr<relay::Worker>>& workers, ListenPlan plan);
  /// Unsubscribes (stop()).
  ~ServerUsers();
  ServerUsers(const ServerUsers&) = delete;
  ServerUsers& operator=(const ServerUsers&) = delete;

  /// Subscribes to the registry: the current users reach the workers before this returns, later
  /// changes as they happen.
  void start();
  /// No further changes reach the workers. Idempotent. Must come before the worker pool stops:
  /// a change closes ports by waiting on the workers.
  void stop();

  /// Whether `port` could become a dedicated port: it can be bound (TCP, and UDP with -u) on
  /// every listen address. For RegistryOptions::port_check.
  absl::Status checkPort(uint16_t port) const;
  /// The dedicated ports open now, with their users.
  std::vector<control::ListenerStatus> dedicatedListeners() const;
  relay::UserTablePtr table() const;

 private:
  void apply(const relay::UserTablePtr& table);
  /// What a dedicated port serves: its user, the plugin in front of it, and the generation
  /// its UDP speaks (a Shadowsocks 2022 port has its own kind of UDP server).
  struct PortUse {
    std::string user;
    std::string plugin;
    std::string plugin_opts;
    bool udp2022 = false;
    /// The sockets and servers opened for `other` serve this use as they are.
    bool sameListeners(const PortUse& other) const {
      return plugin == other.plugin && plugin_opts == other.plugin_opts &&
             udp2022 == other.udp2022;
    }
  };
  struct OpenPort {
    PortUse use;
    std::unique_ptr<relay::Sip003Plugin> plugin;  // null without one
  };

  /// Binds `port` for every worker and hands the sockets over; with a plugin, TCP binds a
  /// loopback port behind it and the plugin starts on the public one. False if a bind failed.
  /// `udp2022`: the port's users speak Shadowsocks 2022, whose UDP is one socket on the first
  /// worker (relay/udp/udp2022_server.h), not one per worker.
  bool openPort(uint16_t port, const PortUse& use, OpenPort* open);
  /// `wait`: returns once every worker has closed its sockets (so that the port can be opened
  /// again: a 2022 port's UDP socket binds without SO_REUSEPORT).
  void closePort(uint16_t port, OpenPort& open, bool wait);

  users::UserRegistry& registry_;
  relay::WorkerPool& pool_;
  std::vector<std::unique_ptr<relay::Worker>>& workers_;
  const ListenPlan plan_;
  uint64_t subscription_ = 0;

  mutable absl::Mutex mu_;
  relay::UserTablePtr table_ ABSL_GUARDED_BY(mu_);
  std::map<uint16_t, OpenPort> open_ports_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shadowrelay::api::app
