// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <grpcpp/security/auth_metadata_processor.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/control/bearer_token.h"

namespace shadowrelay::api::control {

/// The environment variable that may hold the control token (--control-token-file wins).
inline constexpr char kControlTokenEnv[] = "SHADOWRELAY_CONTROL_TOKEN";

/// The control token: the contents of `token_file` if it is non-empty, else `env_value`
/// (pass std::getenv(kControlTokenEnv); nullptr means unset). Surrounding whitespace is
/// trimmed; the token must be printable ASCII without spaces. "" when neither is given.
/// The file is read by loadBearerToken: one of ours that group or others may read is refused.
/// Errors (INVALID_ARGUMENT) name the file or the variable, never the token.
absl::StatusOr<std::string> loadControlToken(absl::string_view token_file, const char* env_value);

/// Checks `authorization: Bearer <token>` on every call except the health service
/// (/grpc.health.v1.Health/...), for a server's credentials (BearerToken: only the token's
/// SHA-256 is kept, compared in constant time); a missing or wrong token gives UNAUTHENTICATED.
/// The authorization header is consumed: handlers never see it. Thread-safe.
class BearerTokenProcessor final : public grpc::AuthMetadataProcessor {
 public:
  explicit BearerTokenProcessor(absl::string_view token);

  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

  /// Does the value of an authorization header carry the token? ("Bearer" in any case.)
  bool accepts(absl::string_view authorization) const { return token_.accepts(authorization); }

 private:
  const BearerToken token_;
};

}  // namespace shadowrelay::api::control
