// SPDX-License-Identifier: Apache-2.0
#pragma once
// The users a server accepts, as the data plane reads them: an immutable table built by the
// control plane on every change and handed to each worker, which swaps it in on its own loop
// (ARCHITECTURE.md, Threading). Sessions and UDP associations hold their user by shared pointer,
// so a table can be replaced while they run.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "relay/users/port_identity.h"
#include "relay/users/relay_user.h"

namespace shadowrelay::relay {

/// Immutable after construction; share it between threads freely.
class UserTable {
 public:
  /// `previous` (may be null): users whose name it also has keep its UserLive, so connection
  /// counts survive the change. `identity_keys`: the ports whose users send SIP023 identity
  /// headers (at most one key per port); their enabled users of the key's method are found by
  /// identityPort(port), and a user whose key is the port's iPSK is no candidate there at all.
  UserTable(uint64_t generation, std::vector<RelayUser> users, const UserTable* previous,
            std::vector<IdentityKey> identity_keys = {});

  uint64_t generation() const { return generation_; }
  size_t size() const { return by_name_.size(); }
  /// nullptr if there is no such user.
  const RelayUser* find(absl::string_view name) const;
  RelayUserPtr findShared(absl::string_view name) const;
  /// Calls `visit` with every user (any order).
  void forEach(absl::FunctionRef<void(const RelayUser&)> visit) const {
    for (const auto& [name, user] : by_name_) visit(*user);
  }
  /// The enabled users of `port` (0: the shared port), in name order: the candidates of trial
  /// decryption. Empty if none.
  std::span<const RelayUserPtr> onPort(uint16_t port) const;
  /// The port's users by identity header (SIP023), or null when its clients send none (a 2017
  /// port, or a 2022 port with one PSK). Valid while this table is.
  const PortIdentity* identityPort(uint16_t port) const;
  /// Whether a session or association of `user` (from an older table) may go on under this
  /// table: the user is still here, enabled, not expired, under its quota, with the same key
  /// and port.
  bool keeps(const RelayUser& user) const;
  /// The distinct dedicated ports of enabled users, ascending.
  std::vector<uint16_t> dedicatedPorts() const;

 private:
  uint64_t generation_;
  absl::flat_hash_map<std::string, RelayUserPtr> by_name_;
  absl::flat_hash_map<uint16_t, std::vector<RelayUserPtr>> by_port_;
  absl::flat_hash_map<uint16_t, std::unique_ptr<PortIdentity>> identity_;  // stable addresses
};

using UserTablePtr = std::shared_ptr<const UserTable>;

}  // namespace shadowrelay::relay
