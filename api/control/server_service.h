// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <functional>

#include "api/control/relay_status.h"
#include "api/users/user_registry.h"
#include "crypto/providers.h"
#include "shadowrelay/v1/server.grpc.pb.h"

namespace shadowrelay::api::control {

/// shadowrelay.v1.ServerService: the relay's status (from `status`, called on a gRPC thread;
/// may be empty), the registry's user count and the providers (may be null). Borrows them.
class ServerService final : public shadowrelay::v1::ServerService::Service {
 public:
  ServerService(users::UserRegistry& registry, const crypto::CryptoProviders* providers,
                std::function<RelayStatus()> status)
      : registry_(registry), providers_(providers), status_(std::move(status)) {}

  grpc::Status GetStatus(grpc::ServerContext* context,
                         const shadowrelay::v1::GetStatusRequest* request,
                         shadowrelay::v1::ServerStatus* response) override;

 private:
  users::UserRegistry& registry_;
  const crypto::CryptoProviders* providers_;
  const std::function<RelayStatus()> status_;
};

}  // namespace shadowrelay::api::control
