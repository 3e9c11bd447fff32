// SPDX-License-Identifier: Apache-2.0
#include "relay/users/port_identity.h"

#include <algorithm>

namespace shadowrelay::relay {

bool PortIdentity::isIdentityKey(const RelayUser& user) const {
  const auto a = user.key.bytes();
  const auto b = key_.key.bytes();
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

bool PortIdentity::add(RelayUserPtr user) {
  if (user->method != key_.method || isIdentityKey(*user)) return false;
  const crypto::UserHash hash = crypto::userHash(user->key.bytes());
  return by_hash_.try_emplace(hash, std::move(user)).second;
}

RelayUserPtr PortIdentity::user(const crypto::UserHash& hash) const {
  const auto it = by_hash_.find(hash);
  return it == by_hash_.end() ? nullptr : it->second;
}

std::span<const uint8_t> PortIdentity::userKey(const crypto::UserHash& hash) const {
  const auto it = by_hash_.find(hash);
  return it == by_hash_.end() ? std::span<const uint8_t>() : it->second->key.bytes();
}

}  // namespace shadowrelay::relay
