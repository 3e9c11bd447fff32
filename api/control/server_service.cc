// SPDX-License-Identifier: Apache-2.0
#include "api/control/server_service.h"

#include <string>

#include "crypto/method.h"

namespace shadowrelay::api::control {

namespace v1 = ::shadowrelay::v1;

grpc::Status ServerService::GetStatus(grpc::ServerContext* /*context*/,
                                      const v1::GetStatusRequest* /*request*/,
                                      v1::ServerStatus* response) {
  const RelayStatus status = status_ ? status_() : RelayStatus{};
  response->set_version(status.version);
  const int64_t seconds = absl::ToInt64Seconds(status.uptime);
  response->mutable_uptime()->set_seconds(seconds);
  response->mutable_uptime()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(status.uptime - absl::Seconds(seconds))));
  response->set_workers(status.workers);
  for (const ListenerStatus& l : status.listeners) {
    v1::Listener* out = response->add_listeners();
    out->set_address(l.address);
    out->set_port(l.port);
    out->set_protocol(l.protocol);
    out->set_user(l.user);
  }
  response->set_active_tcp_sessions(status.active_tcp_sessions);
  response->set_udp_associations(status.udp_associations);
  response->set_users(static_cast<uint32_t>(registry_.size()));
  if (providers_ != nullptr) {
    for (const crypto::AeadProvider* p : providers_->available()) {
      v1::CryptoProvider* out = response->add_crypto_providers();
      out->set_name(std::string(p->name()));
      for (const crypto::MethodInfo& m : crypto::allMethods()) {
        // Methods share algorithms with nothing else, so one entry per served algorithm.
        if (&providers_->providerFor(m) == p) {
          out->add_algorithms(std::string(crypto::algorithmName(m.algorithm)));
        }
      }
    }
  }
  return grpc::Status::OK;
}

}  // namespace shadowrelay::api::control
