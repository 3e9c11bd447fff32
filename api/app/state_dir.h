// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a server keeps in its state directory besides the user store, and the host its access
// URLs name.

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::api::app {

/// A secret kept in <state_dir>/<name>: read (relay::readSecretFile: refused when group or
/// others may read it), or made by `make` and stored there (0600, relay::writeFileDurably: a
/// crash never leaves half a secret; the directory made 0700 first). Errors name the
/// file, never the secret. Without `persist` (--check-config) a missing secret is made but not
/// stored: checking a configuration writes nothing. `*created`: it was made now.
absl::StatusOr<std::string> loadOrCreateSecret(const std::string& state_dir, absl::string_view name,
                                               const std::function<std::string()>& make,
                                               bool persist, bool* created);

/// The host a client would use when the server listens on a wildcard: the first non-loopback
/// IPv4 address of this machine, else 127.0.0.1 (with a warning to set --public-host).
std::string publicHostGuess();

}  // namespace shadowrelay::api::app
