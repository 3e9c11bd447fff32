// SPDX-License-Identifier: Apache-2.0
#include "api/control/control_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "api/control/bearer_auth.h"
#include "api/control/cipher_service.h"
#include "api/control/server_service.h"
#include "api/control/user_service.h"
#include "grpc/health/v1/health.pb.h"
#include "dns/ip_address.h"
#include "relay/base/secret_file.h"
#include "relay/log.h"
#include "relay/net/endpoint.h"

namespace shadowrelay::api::control {
namespace {

constexpr int kMaxThreads = 16;
constexpr int kMaxMessageBytes = 1 << 20;

/// A PEM file; a private key (`secret`) is read as relay::readSecretFile reads secrets.
absl::StatusOr<std::string> readPem(const std::string& path, absl::string_view flag,
                                    bool secret = false) {
  std::string pem;
  if (secret) {
    auto text = relay::readSecretFile(path, flag);
    if (!text.ok()) return text.status();
    pem = *std::move(text);
  } else {
    std::ifstream in(path);
    if (!in) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot be read"));
    }
    std::stringstream text;
    text << in.rdbuf();
    pem = text.str();
  }
  if (pem.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": not a PEM file"));
  }
  return pem;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> makeCredentials(
    const ControlServerOptions& options) {
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (!tls && !options.tls_client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "control-tls-client-ca needs control-tls-cert and control-tls-key");
  }
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (tls) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
      return absl::InvalidArgumentError("control-tls-cert and control-tls-key go together");
    }
    auto cert = readPem(options.tls_cert_file, "control-tls-cert");
    if (!cert.ok()) {
      return cert.status();
    }
    auto key = readPem(options.tls_key_file, "control-tls-key", /*secret=*/true);
    if (!key.ok()) {
      return key.status();
    }
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    if (!options.tls_client_ca_file.empty()) {
      auto ca = readPem(options.tls_client_ca_file, "control-tls-client-ca");
      if (!ca.ok()) {
        return ca.status();
      }
      ssl.pem_root_certs = *ca;
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(ssl);
  } else if (!options.token.empty()) {
    // Plain InsecureServerCredentials cannot carry an AuthMetadataProcessor (gRPC asserts).
    // XdsServerCredentials used outside an xDS server serves exactly as its fallback (here:
    // plaintext) and does run the processor, so every service, reflection included, is
    // covered by one check (tests/api/control/control_server_test.cc proves both).
    creds = grpc::XdsServerCredentials(grpc::InsecureServerCredentials());
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  if (!options.token.empty()) {
    creds->SetAuthMetadataProcessor(std::make_shared<BearerTokenProcessor>(options.token));
  }
  return creds;
}

}  // namespace

bool isLoopbackListenAddress(absl::string_view listen) {
  if (absl::StartsWith(listen, "unix:") || absl::StartsWith(listen, "unix-abstract:")) {
    return true;
  }
  absl::string_view host_port = listen;
  if (!absl::ConsumePrefix(&host_port, "ipv4:")) absl::ConsumePrefix(&host_port, "ipv6:");
  const auto endpoint = relay::Endpoint::parse(host_port, relay::Endpoint::Port::AnyOrZero);
  if (!endpoint.ok()) return false;
  if (endpoint->host == "localhost") return true;
  const std::optional<dns::IpAddress> ip = endpoint->ip();
  if (!ip) return false;
  if (ip->isV4()) return ip->data()[0] == 127;
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr uint8_t kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (std::memcmp(ip->data(), kLoopback6, 16) == 0) return true;
  return std::memcmp(ip->data(), kMappedPrefix, 12) == 0 && ip->data()[12] == 127;
}

absl::Status checkControlTransport(absl::string_view listen, bool tls, bool insecure_plaintext) {
  if (tls || insecure_plaintext || isLoopbackListenAddress(listen)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "config: control_listen: ", listen,
      " is not a loopback address and the control API has no TLS: its bearer token would cross "
      "the network in plaintext. Give --control-tls-cert and --control-tls-key, or "
      "--control-insecure-plaintext to accept that (e.g. inside a private network)"));
}

ControlServer::ControlServer() = default;

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::start(ControlServerOptions options,
                                                                    users::UserRegistry& registry) {
  if (!options.enabled()) {
    return absl::InvalidArgumentError("control API: listen is \"off\"");
  }
  if (options.listen.empty()) {
    return absl::InvalidArgumentError("control-listen: empty");
  }
  if (options.token.empty() && !isLoopbackListenAddress(options.listen)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "control-listen ", options.listen,
        " is not a loopback address: a control token is required (--control-token-file or ",
        kControlTokenEnv, ")"));
  }
  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (absl::Status s = checkControlTransport(options.listen, tls, options.insecure_plaintext);
      !s.ok()) {
    return s;
  }
  auto creds = makeCredentials(options);
  if (!creds.ok()) {
    return creds.status();
  }

  std::unique_ptr<ControlServer> server(new ControlServer());
  server->user_service_ =
      std::make_unique<UserService>(registry, options.public_host, options.shared_port_plugin,
                                    options.show_client_addresses);
  server->cipher_service_ = std::make_unique<CipherService>(registry, options.providers);
  server->server_service_ =
      std::make_unique<ServerService>(registry, options.providers, options.status);

  // Linked from a static archive, health.pb.o would be dropped as unreferenced and with it the
  // descriptor that reflection serves for grpc.health.v1.Health: this reference keeps it.
  (void)grpc::health::v1::HealthCheckResponse::descriptor();
  // Both are process-wide switches read when a server is built.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second process could then bind the same port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // An operator API: a few handler threads and small messages are plenty.
  grpc::ResourceQuota quota("shadowrelay-control");
  quota.SetMaxThreads(kMaxThreads);
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.AddListeningPort(options.listen, *creds, &server->port_);
  builder.RegisterService(server->user_service_.get());
  builder.RegisterService(server->cipher_service_.get());
  builder.RegisterService(server->server_service_.get());
  server->server_ = builder.BuildAndStart();
  const bool unix_socket = absl::StartsWith(options.listen, "unix");
  if (server->server_ == nullptr || (!unix_socket && server->port_ == 0)) {
    return absl::UnavailableError(
        absl::StrCat("control-listen ", options.listen, ": cannot listen (address in use?)"));
  }
  if (unix_socket) {
    server->address_ = options.listen;
  } else {
    // AddListeningPort accepted the address, so it parses; port 0 became the one it got.
    auto endpoint = relay::Endpoint::parse(options.listen, relay::Endpoint::Port::AnyOrZero);
    endpoint->port = static_cast<uint16_t>(server->port_);
    server->address_ = endpoint->toString();
  }
  if (!tls && !isLoopbackListenAddress(options.listen)) {
    SR_LOG(Warn,
           "WARNING: the control API on %s takes its bearer token in PLAINTEXT on a non-loopback "
           "address (--control-insecure-plaintext): anyone on the path can read it and manage the "
           "users. Use --control-tls-cert and --control-tls-key.",
           server->address_);
  }
  SR_LOG(Info, "control API on %s (%s, %s)", server->address_,
         options.tls_cert_file.empty()        ? "plaintext"
         : options.tls_client_ca_file.empty() ? "TLS"
                                              : "mutual TLS",
         options.token.empty() ? "no token" : "bearer token");
  return server;
}

ControlServer::~ControlServer() { shutdown(); }

void ControlServer::shutdown(absl::Duration deadline) {
  if (stopped_ || server_ == nullptr) {
    return;
  }
  stopped_ = true;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::ToInt64Milliseconds(deadline)));
  server_->Wait();
}

}  // namespace shadowrelay::api::control
