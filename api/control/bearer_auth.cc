// SPDX-License-Identifier: Apache-2.0
#include "api/control/bearer_auth.h"

#include "absl/strings/match.h"

namespace shadowrelay::api::control {
namespace {

constexpr absl::string_view kHealthPrefix = "/grpc.health.v1.Health/";

}  // namespace

absl::StatusOr<std::string> loadControlToken(absl::string_view token_file, const char* env_value) {
  if (!token_file.empty()) return loadBearerToken(token_file, "control-token-file");
  if (env_value != nullptr && env_value[0] != '\0') {
    return checkBearerToken(env_value, kControlTokenEnv);
  }
  return std::string();
}

BearerTokenProcessor::BearerTokenProcessor(absl::string_view token) : token_(token) {}

grpc::Status BearerTokenProcessor::Process(const InputMetadata& auth_metadata,
                                           grpc::AuthContext* /*context*/,
                                           OutputMetadata* consumed_auth_metadata,
                                           OutputMetadata* /*response_metadata*/) {
  auto path = auth_metadata.find(":path");
  if (path != auth_metadata.end() &&
      absl::StartsWith(absl::string_view(path->second.data(), path->second.size()),
                       kHealthPrefix)) {
    return grpc::Status::OK;
  }
  auto header = auth_metadata.find("authorization");
  if (header == auth_metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing metadata \"authorization: Bearer <token>\"");
  }
  const absl::string_view value(header->second.data(), header->second.size());
  if (!accepts(value)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong control token");
  }
  consumed_auth_metadata->insert({"authorization", std::string(value)});
  return grpc::Status::OK;
}

}  // namespace shadowrelay::api::control
