// SPDX-License-Identifier: Apache-2.0
#include "api/control/bearer_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "relay/base/secret_file.h"

namespace shadowrelay::api::control {
namespace {

constexpr absl::string_view kBearer = "bearer ";

std::array<uint8_t, 32> sha256(absl::string_view data) {
  std::array<uint8_t, 32> digest{};
  unsigned int len = 0;
  // SHA-256 of a short string cannot fail short of memory exhaustion; a zero digest would then
  // only be matched by a token with the same (impossible) failure.
  EVP_Digest(data.data(), data.size(), digest.data(), &len, EVP_sha256(), nullptr);
  return digest;
}

}  // namespace

absl::StatusOr<std::string> checkBearerToken(absl::string_view text, absl::string_view source) {
  absl::string_view token = absl::StripAsciiWhitespace(text);
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": the token is empty"));
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": the token must be printable ASCII without spaces"));
    }
  }
  return std::string(token);
}

absl::StatusOr<std::string> loadBearerToken(absl::string_view file, absl::string_view what) {
  const std::string path(file);
  auto text = relay::readSecretFile(path, what);
  if (!text.ok()) return text.status();
  return checkBearerToken(*text, absl::StrCat(what, " ", path));
}

BearerToken::BearerToken(absl::string_view token) : digest_(sha256(token)) {}

bool BearerToken::accepts(absl::string_view authorization) const {
  if (authorization.size() <= kBearer.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kBearer.size()), kBearer)) {
    return false;
  }
  const std::array<uint8_t, 32> presented = sha256(authorization.substr(kBearer.size()));
  return CRYPTO_memcmp(presented.data(), digest_.data(), digest_.size()) == 0;
}

}  // namespace shadowrelay::api::control
