// SPDX-License-Identifier: Apache-2.0
#include "relay/users/device_ids.h"

#include <span>

#include "absl/strings/escaping.h"
#include "crypto/key_derivation.h"

namespace shadowrelay::relay {

std::shared_ptr<const DeviceIds> DeviceIds::random() {
  std::array<uint8_t, 32> key;
  crypto::randomBytes(key);
  return std::shared_ptr<const DeviceIds>(new DeviceIds(key));
}

std::shared_ptr<const DeviceIds> DeviceIds::fromSecret(absl::string_view secret) {
  std::array<uint8_t, 32> key;
  crypto::blake3DeriveKey(
      "shadowrelay device ids",
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(secret.data()), secret.size()),
      key);
  return std::shared_ptr<const DeviceIds>(new DeviceIds(key));
}

std::string DeviceIds::id(absl::string_view device_key) const {
  std::array<uint8_t, kHexDigits / 2> out;
  crypto::blake3KeyedHash(
      key_,
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(device_key.data()),
                               device_key.size()),
      out);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(out.data()), out.size()));
}

}  // namespace shadowrelay::relay
