// SPDX-License-Identifier: Apache-2.0
#pragma once
// The immutable user table the data plane reads: built by UserRegistry on every change and
// handed to subscribers as a shared pointer, so workers can swap it in on their own thread.
// Depends only on crypto/ (no gRPC, no JSON), so the relay may keep it as is.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "api/users/user.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"

namespace shadowrelay::api::users {

/// One user as a worker needs it: the derived master key instead of the password.
struct SnapshotUser {
  std::string name;
  const crypto::MethodInfo* method = nullptr;  // points into the static method table
  crypto::MasterKey key;
  uint16_t port = 0;  // dedicated port; 0: the server's shared port
  bool enabled = true;
  bool quota_exceeded = false;  // data_quota_bytes reached: refuse new sessions
  UserLimits limits;
  /// Changes whenever method, secret, port, enabled or limits change (not for traffic), so a
  /// worker can tell "same user, same key" from "rotated" when it compares two snapshots.
  uint64_t revision = 0;

  /// May this user open a new session?
  bool admits() const { return enabled && !quota_exceeded; }
};

/// Immutable after construction; share it freely between threads.
class UserSnapshot {
 public:
  UserSnapshot(uint64_t generation, std::vector<SnapshotUser> users);

  /// Increases by one with every published change (starts at 1 for the first snapshot).
  uint64_t generation() const { return generation_; }
  /// Every user (disabled and over-quota ones too), sorted by name.
  std::span<const SnapshotUser> users() const { return users_; }
  size_t size() const { return users_.size(); }
  /// nullptr if there is no such user.
  const SnapshotUser* find(absl::string_view name) const;
  /// The users of `port` (0: the shared port) that admit() new sessions, in name order.
  std::vector<const SnapshotUser*> admittedOnPort(uint16_t port) const;
  /// The distinct dedicated ports of all users (admitting or not), ascending.
  std::vector<uint16_t> dedicatedPorts() const;

 private:
  uint64_t generation_;
  std::vector<SnapshotUser> users_;
};

using UserSnapshotPtr = std::shared_ptr<const UserSnapshot>;

}  // namespace shadowrelay::api::users
