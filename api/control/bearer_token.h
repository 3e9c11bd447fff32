// SPDX-License-Identifier: Apache-2.0
#pragma once
// A bearer token as the control API and /metrics check it: loaded from a secret file, kept
// only as its SHA-256, compared in constant time. No gRPC here (see bearer_auth.h for that).

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::api::control {

/// A token read from `file` (relay::readSecretFile: one of ours that group or others may read
/// is refused), trimmed of surrounding whitespace; it must be non-empty printable ASCII
/// without spaces. Errors (INVALID_ARGUMENT) begin "<what> <file>:" and never echo the token.
absl::StatusOr<std::string> loadBearerToken(absl::string_view file, absl::string_view what);

/// The same rules for a token from elsewhere (an environment variable named `source`).
absl::StatusOr<std::string> checkBearerToken(absl::string_view text, absl::string_view source);

/// Checks "Authorization: Bearer <token>" values. Thread-safe (immutable).
class BearerToken {
 public:
  explicit BearerToken(absl::string_view token);

  /// Does the value of an authorization header carry the token? ("Bearer" in any case.)
  bool accepts(absl::string_view authorization) const;

 private:
  std::array<uint8_t, 32> digest_;
};

}  // namespace shadowrelay::api::control
