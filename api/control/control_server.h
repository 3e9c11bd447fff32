// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/control/relay_status.h"
#include "api/users/user_registry.h"
#include "crypto/providers.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace shadowrelay::api::control {

class CipherService;
class ServerService;
class UserService;

inline constexpr char kControlListenOff[] = "off";

struct ControlServerOptions {
  /// --control-listen: "host:port" ("[v6]:port", port 0 picks one), "unix:/path", or "off".
  std::string listen = "127.0.0.1:50051";
  /// Bearer token (loadControlToken). Empty: no authentication, allowed on loopback only.
  std::string token;
  /// PEM files: --control-tls-cert and --control-tls-key enable TLS; --control-tls-client-ca
  /// also requires and verifies client certificates (mTLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  /// --control-insecure-plaintext: a token may cross the network in plaintext (a non-loopback
  /// address without TLS); start() then logs a warning.
  bool insecure_plaintext = false;
  /// Host in access URLs (--public-host, else the relay's listen address).
  std::string public_host = "127.0.0.1";
  /// The SIP002 plugin value of the server's --plugin (shared-port users' access URLs).
  std::string shared_port_plugin;
  /// --show-client-addresses: User.devices shows client addresses, not their keyed hashes.
  bool show_client_addresses = false;
  /// For ListCiphers and GetStatus; may be null. Borrowed: must outlive the server.
  const crypto::CryptoProviders* providers = nullptr;
  /// The relay's status for GetStatus; called on gRPC threads, so it must be thread-safe.
  std::function<RelayStatus()> status;

  bool enabled() const { return listen != kControlListenOff; }
};

/// True for 127.0.0.0/8, ::1, "localhost" and unix sockets: where a token is optional.
bool isLoopbackListenAddress(absl::string_view listen);

/// A bearer token sent in plaintext to a non-loopback address can be read on the way and used
/// to take over the users. INVALID_ARGUMENT naming control_listen when `listen` is not loopback,
/// `tls` is off and `insecure_plaintext` (--control-insecure-plaintext) is not given.
absl::Status checkControlTransport(absl::string_view listen, bool tls, bool insecure_plaintext);

/// The gRPC control API: shadowrelay.v1 UserService, CipherService and ServerService,
/// grpc.health.v1.Health (no token needed) and server reflection (grpc.reflection.v1alpha).
/// Owns the gRPC server and its threads; borrows the registry, which must outlive it.
class ControlServer {
 public:
  /// Listens and serves. INVALID_ARGUMENT for "off", bad TLS options or a plaintext
  /// non-loopback address (checkControlTransport); FAILED_PRECONDITION for a non-loopback
  /// address without a token; UNAVAILABLE if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ControlServer>> start(ControlServerOptions options,
                                                              users::UserRegistry& registry);
  /// shutdown() with a one-second deadline.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  /// The bound TCP port (0 for unix sockets).
  int port() const { return port_; }
  /// "host:port" as bound, e.g. "127.0.0.1:50051".
  const std::string& address() const { return address_; }

  /// Health turns NOT_SERVING, new calls are refused, calls in flight get until `deadline`
  /// before they are cancelled. Idempotent. Do not call it from a gRPC handler.
  void shutdown(absl::Duration deadline = absl::Seconds(1));

 private:
  ControlServer();

  std::unique_ptr<UserService> user_service_;
  std::unique_ptr<CipherService> cipher_service_;
  std::unique_ptr<ServerService> server_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
  bool stopped_ = false;
};

}  // namespace shadowrelay::api::control
