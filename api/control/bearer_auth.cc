// SPDX-License-Identifier: Apache-2.0
#include "api/control/bearer_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "relay/log.h"

namespace shadowrelay::api::control {
namespace {

constexpr absl::string_view kHealthPrefix = "/grpc.health.v1.Health/";
constexpr absl::string_view kBearer = "bearer ";

std::array<uint8_t, 32> sha256(absl::string_view data) {
  std::array<uint8_t, 32> digest{};
  unsigned int len = 0;
  // SHA-256 of a short string cannot fail short of memory exhaustion; a zero digest would then
  // only be matched by a token with the same (impossible) failure.
  EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr);
  return digest;
}

absl::StatusOr<std::string> checkToken(std::string text, absl::string_view source) {
  absl::string_view token = absl::StripAsciiWhitespace(text);
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the control token is empty"));
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the control token must be printable ASCII without spaces"));
    }
  }
  return std::string(token);
}

}  // namespace

absl::StatusOr<std::string> loadControlToken(absl::string_view token_file, const char* env_value) {
  if (!token_file.empty()) {
    const std::string path(token_file);
    std::ifstream in(path);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("control-token-file ", path, ": cannot be read"));
    }
    std::stringstream text;
    text << in.rdbuf();
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      SR_LOG(Warn, "control-token-file %s can be read by other users (chmod 600 it)", path);
    }
    return checkToken(text.str(), absl::StrCat("control-token-file ", path));
  }
  if (env_value != nullptr && env_value[0] != '\0') {
    return checkToken(env_value, kControlTokenEnv);
  }
  return std::string();
}

BearerTokenProcessor::BearerTokenProcessor(absl::string_view token) : digest_(sha256(token)) {}

bool BearerTokenProcessor::accepts(absl::string_view authorization) const {
  if (authorization.size() <= kBearer.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kBearer.size()), kBearer)) {
    return false;
  }
  const std::array<uint8_t, 32> presented = sha256(authorization.substr(kBearer.size()));
  return CRYPTO_memcmp(presented.data(), digest_.data(), digest_.size()) == 0;
}

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
