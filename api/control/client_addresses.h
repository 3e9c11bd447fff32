// SPDX-License-Identifier: Apache-2.0
#pragma once
// How the control API shows a client's address (User.devices): client addresses are personal
// data, so by default only a keyed id of them (relay::DeviceIds) leaves the process.

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"
#include "relay/users/device_ids.h"

namespace shadowrelay::api::control {

/// Turns a device key (relay::sourceKey(): an IPv4 address or IPv6 /64) into User.devices'
/// address. Thread-safe (immutable after construction).
class ClientAddresses {
 public:
  /// `show` (--show-client-addresses): the address as text. Otherwise its id under `ids`: the
  /// registry's (UserRegistry::deviceIds()), a key of this process, or with an etcd store the
  /// cluster's, so that one device has one id on every replica.
  explicit ClientAddresses(bool show) : show_(show) {}

  std::string display(absl::string_view device_key, const relay::DeviceIds& ids) const;

  /// Hex digits of a hashed address.
  static constexpr size_t kHashHexDigits = relay::DeviceIds::kHexDigits;

 private:
  const bool show_;
};

}  // namespace shadowrelay::api::control
