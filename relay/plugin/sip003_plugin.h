// SPDX-License-Identifier: Apache-2.0
#pragma once
// SIP003 (PROTOCOL.md §3.2) for one role: which addresses the plugin and the relay use, the
// plugin's environment, and its process (relay/plugin/plugin_process.h).
//
//   server:  client --> plugin on the public host:port --> relay's TCP listener on 127.0.0.1:L
//   local:   app --> relay --> plugin on 127.0.0.1:L --> the server's host:port
//
// UDP never goes through the plugin: the server's UDP port stays the public one, and a client's
// UDP goes to the server's real address.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "relay/config.h"
#include "relay/net/endpoint.h"
#include "relay/net/socket.h"
#include "relay/plugin/plugin_process.h"

namespace shadowrelay::relay {

/// The program `name` as execvp() would find it: a name with a '/' as given, else the first
/// executable file of that name in `path_env` (PATH's syntax). NOT_FOUND names what was looked
/// at.
absl::StatusOr<std::string> findExecutable(absl::string_view name, absl::string_view path_env);

/// Whether a TCP socket listens on `port` (any address, IPv4 or IPv6), from /proc/net/tcp and
/// /proc/net/tcp6: how the relay sees that the plugin is up without connecting to it (a
/// connection would reach the plugin's peer as an empty session).
bool tcpPortListening(uint16_t port);


/// Owned by the runtime of a role with --plugin; the main thread's.
class Sip003Plugin {
 public:
  /// How long start() waits for the plugin to listen.
  static constexpr std::chrono::seconds kListenDeadline{15};

  /// Null when `config` names no plugin. INVALID_ARGUMENT ("config: plugin: ...") when the
  /// program is not found. Server: `listen` is the role's listen addresses (validateConfig
  /// allowed one); a port 0 becomes a free port for the plugin's TCP and, with `udp`, our UDP
  /// (picked by binding and closing: racy, the way SIP003 hosts pick ports). Client: picks the
  /// loopback port the plugin listens on. With config.check_only nothing is bound.
  static absl::StatusOr<std::unique_ptr<Sip003Plugin>> create(const Config& config,
                                                               std::vector<SocketAddress>& listen,
                                                               bool udp);
  /// A server plugin for one user's dedicated port: it listens on `public_address` and passes
  /// TCP to `relay_listen` (the port's loopback listener, bound already). NOT_FOUND when the
  /// program is not found.
  static absl::StatusOr<std::unique_ptr<Sip003Plugin>> forDedicatedPort(
      absl::string_view plugin, absl::string_view options, const SocketAddress& public_address,
      const SocketAddress& relay_listen);
  ~Sip003Plugin();
  Sip003Plugin(const Sip003Plugin&) = delete;
  Sip003Plugin& operator=(const Sip003Plugin&) = delete;

  /// Server: where the relay's TCP listener binds instead of the public address: 127.0.0.1,
  /// port 0 until the runtime binds it and writes the port it got here.
  SocketAddress& relayListen() { return relay_listen_; }
  /// Client: where the relay connects instead of the server (the plugin's 127.0.0.1:port).
  const Endpoint& relayConnect() const { return relay_connect_; }

  /// Starts the plugin (server: after relayListen() is bound) and, with `wait`, waits until it
  /// listens, up to kListenDeadline. UNAVAILABLE when it exits first or does not listen in time.
  absl::Status start(bool wait = true);
  /// SIGTERM, then SIGKILL (PluginProcess::stop()).
  void stop();

  const std::string& name() const { return name_; }
  /// The count behind shadowrelay_plugin_restarts_total; valid before start() too.
  std::shared_ptr<const std::atomic<uint64_t>> restartCounter() const { return restarts_; }
  /// The SIP002 `plugin` query value of this server's ss:// URIs (clientPluginParameter()).
  std::string uriParameter() const;
  /// The running plugin's pid (0 before start() or between a run and its restart).
  pid_t pid() const;

 private:
  Sip003Plugin(const Config& config, std::string path);
  Sip003Plugin(Role role, absl::string_view name, std::string path, absl::string_view options);

  const Role role_;
  const std::string name_;
  const std::string path_;
  const std::string options_;
  Endpoint remote_;               // SS_REMOTE_HOST/PORT
  SocketAddress relay_listen_;    // server: SS_LOCAL_HOST/PORT once bound
  Endpoint relay_connect_;        // client: SS_LOCAL_HOST/PORT
  std::shared_ptr<std::atomic<uint64_t>> restarts_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::unique_ptr<PluginProcess> process_;
};

}  // namespace shadowrelay::relay
