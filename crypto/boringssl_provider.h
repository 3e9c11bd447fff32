// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/aead.h"

namespace shadowrelay::crypto {

/// Loads the BoringSSL plugin (libshadowrelay_boringssl.so) with
/// dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND). `path` empty: $SHADOWRELAY_BORINGSSL_PLUGIN,
/// then Bazel runfiles, then next to the executable, then ../lib/shadowrelay/.
/// Sanitizer builds refuse RTLD_DEEPBIND, so there this returns UNAVAILABLE.
/// The plugin stays loaded for the life of the process.
absl::StatusOr<std::unique_ptr<AeadProvider>> loadBoringsslProvider(const std::string& path = "");

/// Where loadBoringsslProvider("") would look, in order (for messages and tests).
std::vector<std::string> boringsslPluginCandidates();

}  // namespace shadowrelay::crypto
