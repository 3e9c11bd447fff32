// SPDX-License-Identifier: Apache-2.0
#include "api/app/state_dir.h"

#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "relay/base/durable_file.h"
#include "relay/base/secret_file.h"
#include "relay/log.h"
#include "relay/net/endpoint.h"

namespace shadowrelay::api::app {

absl::StatusOr<std::string> loadOrCreateSecret(const std::string& state_dir, absl::string_view name,
                                               const std::function<std::string()>& make,
                                               bool persist, bool* created) {
  const std::string path = absl::StrCat(state_dir, "/", name);
  if (::access(path.c_str(), F_OK) == 0) {
    auto text = relay::readSecretFile(path, "state_dir");
    if (!text.ok()) return text.status();
    std::string secret(absl::StripAsciiWhitespace(*text));
    if (secret.empty()) return absl::DataLossError(absl::StrCat(path, ": empty"));
    *created = false;
    return secret;
  }
  if (!persist) {
    *created = true;
    return make();
  }
  if (auto made = relay::makePrivateDirectory(state_dir, "state_dir"); !made.ok()) {
    return absl::UnavailableError(made.status().message());
  }
  std::string secret = make();
  if (absl::Status s = relay::writeFileDurably(path, secret + "\n", 0600); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("state_dir ", state_dir, ": cannot store ", name,
                                               ": ", s.message()));
  }
  *created = true;
  return secret;
}

std::string publicHostGuess() {
  if (std::optional<std::string> found = relay::firstNonLoopbackIpv4()) return *found;
  SR_LOG(Warn, "no non-loopback IPv4 address for access URLs: using 127.0.0.1; set --public-host");
  return "127.0.0.1";
}

}  // namespace shadowrelay::api::app
