// SPDX-License-Identifier: Apache-2.0
#include "api/control/client_addresses.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "relay/users/device_tracker.h"

namespace shadowrelay::api::control {

ClientAddresses::ClientAddresses(bool show) : show_(show) {
  // Without random bytes no hash is safe to show: a failure is impossible after init.
  if (RAND_bytes(hmac_key_.data(), static_cast<int>(hmac_key_.size())) != 1) std::abort();
}

std::string ClientAddresses::display(absl::string_view device_key) const {
  if (show_) return relay::DeviceTracker::keyText(std::string(device_key));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), hmac_key_.data(), static_cast<int>(hmac_key_.size()),
           reinterpret_cast<const unsigned char*>(device_key.data()), device_key.size(), digest,
           &len) == nullptr) {
    return "";
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), kHashHexDigits / 2));
}

}  // namespace shadowrelay::api::control
