// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "crypto/aead.h"
#include "crypto/method.h"

namespace shadowrelay::crypto {

/// SIP004 UDP packets (PROTOCOL.md §1.6):
///
///   packet = salt | Seal(HKDF(master, salt), nonce = 0, address | payload) | tag
///
/// A legacy stream method (isStream(), §4): packet = IV | StreamEncrypt(master, IV, address |
/// payload), a fresh IV per packet and no tag.
///
/// One codec per loop and method: it reuses one cipher context and rekeys it per packet.
/// Not thread-safe.
class UdpCodec {
 public:
  UdpCodec(const MethodInfo& method, const AeadProvider& provider);

  /// Seals `plain` with a fresh random salt. `out` may not overlap `plain`.
  /// @return the packet size, or 0 if `out` is too small or the library failed.
  size_t seal(std::span<const uint8_t> master, std::span<const uint8_t> plain,
              std::span<uint8_t> out);

  /// Opens `packet` into `out` (out may alias packet + salt size exactly).
  /// @return the plaintext size, or nullopt if too short or the tag does not match.
  std::optional<size_t> open(std::span<const uint8_t> master, std::span<const uint8_t> packet,
                             std::span<uint8_t> out);

  size_t overhead() const { return method_.salt_size + method_.tag_size; }
  const MethodInfo& method() const { return method_; }

 private:
  bool rekey(std::span<const uint8_t> master, std::span<const uint8_t> salt);

  const MethodInfo& method_;
  const AeadProvider& provider_;
  AeadPtr aead_;
};

}  // namespace shadowrelay::crypto
