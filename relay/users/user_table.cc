// SPDX-License-Identifier: Apache-2.0
#include "relay/users/user_table.h"

#include <algorithm>

namespace shadowrelay::relay {

UserTable::UserTable(uint64_t generation, std::vector<RelayUser> users, const UserTable* previous,
                     std::vector<IdentityKey> identity_keys)
    : generation_(generation) {
  for (IdentityKey& key : identity_keys) {
    const uint16_t port = key.port;
    identity_.try_emplace(port, std::make_unique<PortIdentity>(std::move(key)));
  }
  std::sort(users.begin(), users.end(),
            [](const RelayUser& a, const RelayUser& b) { return a.name < b.name; });
  for (RelayUser& user : users) {
    if (previous != nullptr) {
      if (const RelayUser* old = previous->find(user.name)) user.live = old->live;
    }
    user.live->bytes_per_second.store(user.bytes_per_second, std::memory_order_relaxed);
    auto shared = std::make_shared<const RelayUser>(std::move(user));
    if (shared->enabled) {
      const auto identity = identity_.find(shared->port);
      // On an identity port the iPSK holder (a -k key) serves nobody: every client has the key.
      if (identity == identity_.end() || !identity->second->isIdentityKey(*shared)) {
        by_port_[shared->port].push_back(shared);
      }
      if (identity != identity_.end()) identity->second->add(shared);
    }
    by_name_.emplace(shared->name, std::move(shared));
  }
}

const RelayUser* UserTable::find(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

RelayUserPtr UserTable::findShared(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::span<const RelayUserPtr> UserTable::onPort(uint16_t port) const {
  auto it = by_port_.find(port);
  if (it == by_port_.end()) return {};
  return it->second;
}

const PortIdentity* UserTable::identityPort(uint16_t port) const {
  auto it = identity_.find(port);
  return it == identity_.end() ? nullptr : it->second.get();
}

bool UserTable::keeps(const RelayUser& user) const {
  const RelayUser* now = find(user.name);
  return now != nullptr && now->enabled && !now->quota_exceeded && !now->expired &&
         now->sameKey(user) &&
         now->port == user.port;
}

std::vector<uint16_t> UserTable::dedicatedPorts() const {
  std::vector<uint16_t> ports;
  for (const auto& [port, users] : by_port_) {
    if (port != 0) ports.push_back(port);
  }
  std::sort(ports.begin(), ports.end());
  return ports;
}

}  // namespace shadowrelay::relay
