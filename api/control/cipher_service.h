// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "api/users/user_registry.h"
#include "crypto/providers.h"
#include "shadowrelay/v1/ciphers.grpc.pb.h"

namespace shadowrelay::api::control {

/// shadowrelay.v1.CipherService: the method table, the providers of this process (may be null:
/// then no provider is named) and the registry's default method. Borrows both; thread-safe.
class CipherService final : public shadowrelay::v1::CipherService::Service {
 public:
  CipherService(users::UserRegistry& registry, const crypto::CryptoProviders* providers)
      : registry_(registry), providers_(providers) {}

  grpc::Status ListCiphers(grpc::ServerContext* context,
                           const shadowrelay::v1::ListCiphersRequest* request,
                           shadowrelay::v1::ListCiphersResponse* response) override;
  grpc::Status GetDefaults(grpc::ServerContext* context,
                           const shadowrelay::v1::GetDefaultsRequest* request,
                           shadowrelay::v1::Defaults* response) override;
  grpc::Status SetDefaults(grpc::ServerContext* context,
                           const shadowrelay::v1::SetDefaultsRequest* request,
                           shadowrelay::v1::Defaults* response) override;

 private:
  users::UserRegistry& registry_;
  const crypto::CryptoProviders* providers_;
};

}  // namespace shadowrelay::api::control
