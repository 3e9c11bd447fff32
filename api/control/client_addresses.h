// SPDX-License-Identifier: Apache-2.0
#pragma once
// How the control API shows a client's address (User.devices): client addresses are personal
// data, so by default only a keyed hash of them leaves the process.

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace shadowrelay::api::control {

/// Turns a device key (relay::sourceKey(): an IPv4 address or IPv6 /64) into User.devices'
/// address. Thread-safe (immutable after construction).
class ClientAddresses {
 public:
  /// `show` (--show-client-addresses): the address as text. Otherwise HMAC-SHA256 of the key
  /// under a random key made here, so the hashes are stable only while this object lives (the
  /// process) and cannot be reversed by hashing every IPv4 address without it.
  explicit ClientAddresses(bool show);

  std::string display(absl::string_view device_key) const;

  /// Hex digits of a hashed address.
  static constexpr size_t kHashHexDigits = 16;

 private:
  const bool show_;
  std::array<uint8_t, 32> hmac_key_{};
};

}  // namespace shadowrelay::api::control
