// SPDX-License-Identifier: Apache-2.0
#include "api/users/user_snapshot.h"

#include <algorithm>

namespace shadowrelay::api::users {

UserSnapshot::UserSnapshot(uint64_t generation, std::vector<SnapshotUser> users)
    : generation_(generation), users_(std::move(users)) {
  std::sort(users_.begin(), users_.end(),
            [](const SnapshotUser& a, const SnapshotUser& b) { return a.name < b.name; });
}

const SnapshotUser* UserSnapshot::find(absl::string_view name) const {
  auto it = std::lower_bound(users_.begin(), users_.end(), name,
                             [](const SnapshotUser& u, absl::string_view n) { return u.name < n; });
  if (it == users_.end() || it->name != name) {
    return nullptr;
  }
  return &*it;
}

std::vector<const SnapshotUser*> UserSnapshot::admittedOnPort(uint16_t port) const {
  std::vector<const SnapshotUser*> out;
  for (const SnapshotUser& u : users_) {
    if (u.port == port && u.admits()) {
      out.push_back(&u);
    }
  }
  return out;
}

std::vector<uint16_t> UserSnapshot::dedicatedPorts() const {
  std::vector<uint16_t> ports;
  for (const SnapshotUser& u : users_) {
    if (u.port != 0) {
      ports.push_back(u.port);
    }
  }
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  return ports;
}

}  // namespace shadowrelay::api::users
