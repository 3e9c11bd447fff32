// SPDX-License-Identifier: Apache-2.0
#include "relay/users/user_table.h"

#include <algorithm>

namespace shadowrelay::relay {

bool RelayUser::sameKey(const RelayUser& other) const {
  const auto a = key.bytes();
  const auto b = other.key.bytes();
  return method == other.method && std::equal(a.begin(), a.end(), b.begin(), b.end());
}

bool RelayUser::admitsNewSession(uint32_t others) const {
  if (!enabled || quota_exceeded) return false;
  return max_connections == 0 || others < max_connections;
}

UserTable::UserTable(uint64_t generation, std::vector<RelayUser> users, const UserTable* previous)
    : generation_(generation) {
  std::sort(users.begin(), users.end(),
            [](const RelayUser& a, const RelayUser& b) { return a.name < b.name; });
  for (RelayUser& user : users) {
    if (previous != nullptr) {
      if (const RelayUser* old = previous->find(user.name)) user.live = old->live;
    }
    auto shared = std::make_shared<const RelayUser>(std::move(user));
    if (shared->enabled) by_port_[shared->port].push_back(shared);
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

bool UserTable::keeps(const RelayUser& user) const {
  const RelayUser* now = find(user.name);
  return now != nullptr && now->enabled && !now->quota_exceeded && now->sameKey(user) &&
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
