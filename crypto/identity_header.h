// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "absl/container/flat_hash_map.h"
#include "crypto/aead.h"
#include "crypto/key_derivation.h"

namespace shadowrelay::crypto {

/// SIP023 extensible identity headers (PROTOCOL.md §2.7), for the 2022 AES methods only. Each
/// header is one AES block that hides the next hop's user hash, BLAKE3(next PSK)[0..16]:
///
///   TCP: EIH = AES(identitySubkey(iPSK, salt), hash(next))       between salt and first chunk
///   UDP: EIH = AES(iPSK, hash(next) XOR separate header plain)   after the separate header
inline constexpr size_t kIdentityHeaderSize = BlockCipher::kBlockSize;

using IdentityBlock = std::span<const uint8_t, kIdentityHeaderSize>;
using IdentityBlockOut = std::span<uint8_t, kIdentityHeaderSize>;

/// The TCP identity header naming `next` for the hop that holds `ipsk`, on the stream with
/// `salt`. @return false if the library failed.
bool sealTcpIdentityHeader(const AeadProvider& provider, std::span<const uint8_t> ipsk,
                           std::span<const uint8_t> salt, const UserHash& next,
                           IdentityBlockOut out);

/// The user hash in a TCP identity header, for the hop that holds `ipsk`; nullopt if the library
/// failed (a wrong key gives a wrong hash, which no lookup finds).
std::optional<UserHash> openTcpIdentityHeader(const AeadProvider& provider,
                                              std::span<const uint8_t> ipsk,
                                              std::span<const uint8_t> salt, IdentityBlock eih);

/// The UDP identity header naming `next`; `ipsk` is keyed with the hop's iPSK and
/// `separate_header` is the packet's plaintext separate header (session ID || packet ID).
bool sealUdpIdentityHeader(BlockCipher& ipsk, IdentityBlock separate_header, const UserHash& next,
                           IdentityBlockOut out);

/// The user hash in a UDP identity header (see sealUdpIdentityHeader).
std::optional<UserHash> openUdpIdentityHeader(BlockCipher& ipsk, IdentityBlock separate_header,
                                              IdentityBlock eih);

/// A multi-user server's users by user hash: how a decoder turns an identity header into the
/// user's PSK. Called on the decoding thread.
class UserKeyLookup {
 public:
  virtual ~UserKeyLookup() = default;
  /// The PSK of the user whose BLAKE3(PSK)[0..16] is `hash`, or an empty span if none. The span
  /// must stay valid until the decoder call that asked returns.
  virtual std::span<const uint8_t> userKey(const UserHash& hash) const = 0;
};

/// A UserKeyLookup over a fixed set of keys. Not thread-safe to modify; const use is.
class UserKeyTable final : public UserKeyLookup {
 public:
  /// Adds a user's PSK (copied); a key added twice keeps its first copy. @return its hash.
  UserHash add(std::span<const uint8_t> psk);
  size_t size() const { return keys_.size(); }

  // crypto::UserKeyLookup
  std::span<const uint8_t> userKey(const UserHash& hash) const override;

 private:
  absl::flat_hash_map<UserHash, MasterKey> keys_;
};

}  // namespace shadowrelay::crypto
