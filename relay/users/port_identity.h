// SPDX-License-Identifier: Apache-2.0
#pragma once
// SIP023 on one port (PROTOCOL.md §2.7): a Shadowsocks 2022 AES port whose clients name their
// user in an identity header. The port has an identity key (iPSK), which every user's client
// also holds; a user is found by BLAKE3(uPSK)[0..16] in one hash lookup whatever the number of
// users, with no trial decryption. The TCP server hands it to the request decoder as its
// crypto::UserKeyLookup; the UDP server reads the same table (identityKey(), user()).

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/container/flat_hash_map.h"
#include "crypto/aead.h"
#include "crypto/identity_header.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "relay/users/relay_user.h"

namespace shadowrelay::relay {

/// What the control plane gives a UserTable for a port whose users send identity headers.
struct IdentityKey {
  uint16_t port = 0;                               // 0: the shared port
  const crypto::MethodInfo* method = nullptr;      // a 2022 AES method (usesSeparateHeader)
  const crypto::AeadProvider* provider = nullptr;  // null in tables not for relaying
  crypto::MasterKey key;                           // the iPSK: method->key_size bytes
};

/// One port's users by user hash. Filled while its UserTable is built, then immutable: share
/// it between threads like the table, which owns it (hold the table to hold it).
class PortIdentity final : public crypto::UserKeyLookup {
 public:
  explicit PortIdentity(IdentityKey key) : key_(std::move(key)) {}

  uint16_t port() const { return key_.port; }
  const crypto::MethodInfo& method() const { return *key_.method; }
  const crypto::AeadProvider* provider() const { return key_.provider; }
  /// The iPSK: it keys the identity subkey of each TCP stream (and the UDP separate header).
  std::span<const uint8_t> identityKey() const { return key_.key.bytes(); }

  /// Adds `user` under the hash of its key. Refused (false) for a user of another method, and
  /// for a user whose key is the iPSK itself: every client of the port holds that key, so it
  /// names nobody (whoever holds it could pass for that user). A hash taken twice (two users
  /// with one key) keeps the first user.
  bool add(RelayUserPtr user);
  /// The user whose BLAKE3(key)[0..16] is `hash`, or null.
  RelayUserPtr user(const crypto::UserHash& hash) const;
  size_t size() const { return by_hash_.size(); }
  /// Whether `user`'s key is this port's iPSK (a -k key in use as the identity key).
  bool isIdentityKey(const RelayUser& user) const;

  // crypto::UserKeyLookup
  std::span<const uint8_t> userKey(const crypto::UserHash& hash) const override;

 private:
  IdentityKey key_;
  absl::flat_hash_map<crypto::UserHash, RelayUserPtr> by_hash_;
};

}  // namespace shadowrelay::relay
