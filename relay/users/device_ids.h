// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a device is called outside the process (issue 18 §1, issue 19 §2): client addresses are
// personal data, so the control API and the etcd store see a keyed hash of a device's key, never
// the address. With an etcd store every replica uses the cluster's key (`P device_key`), so that
// one device has one id on every replica and the replicas can count a user's devices together.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace shadowrelay::relay {

/// Keyed ids of device keys (relay::sourceKey()). Immutable; share it between threads freely.
class DeviceIds {
 public:
  /// Hex digits of an id (64 bits: a collision among one user's devices is out of reach).
  static constexpr size_t kHexDigits = 16;

  /// Ids under a random key made here: stable only while the object lives (the process).
  static std::shared_ptr<const DeviceIds> random();
  /// Ids under a key derived from `secret` (any bytes, e.g. etcd's `device_key` value): the
  /// same in every process given the same secret.
  static std::shared_ptr<const DeviceIds> fromSecret(absl::string_view secret);

  /// BLAKE3 keyed_hash(key, device_key), the first 8 bytes in hex. Cannot be reversed by hashing
  /// every IPv4 address without the key.
  std::string id(absl::string_view device_key) const;

 private:
  explicit DeviceIds(const std::array<uint8_t, 32>& key) : key_(key) {}
  std::array<uint8_t, 32> key_;
};

using DeviceIdsPtr = std::shared_ptr<const DeviceIds>;

}  // namespace shadowrelay::relay
