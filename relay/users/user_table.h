// SPDX-License-Identifier: Apache-2.0
#pragma once
// The users a server accepts, as the data plane reads them: an immutable table built by the
// control plane on every change and handed to each worker, which swaps it in on its own loop
// (ARCHITECTURE.md, Threading). Sessions and UDP associations hold their user by shared pointer,
// so a table can be replaced while they run.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "crypto/aead.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"

namespace shadowrelay::relay {

/// What all workers count together for one user name; carried from table to table.
struct UserLive {
  /// TCP sessions open now, on every worker (changed at session start and close only).
  std::atomic<uint32_t> tcp_sessions{0};
};

struct RelayUser {
  std::string name;
  const crypto::MethodInfo* method = nullptr;
  const crypto::AeadProvider* provider = nullptr;
  crypto::MasterKey key;
  uint16_t port = 0;  // a dedicated port; 0: the server's shared port
  bool enabled = true;
  bool quota_exceeded = false;  // data quota reached: identified, then refused
  uint32_t max_connections = 0;  // concurrent TCP sessions; 0: unlimited
  std::shared_ptr<UserLive> live = std::make_shared<UserLive>();

  /// Same method and key: a live session of `other` may continue under this user.
  bool sameKey(const RelayUser& other) const;
  /// May a new session start (identified users only), `others` sessions of the user being open
  /// besides it? False over quota or at max_connections.
  bool admitsNewSession(uint32_t others) const;
};

using RelayUserPtr = std::shared_ptr<const RelayUser>;

/// Immutable after construction; share it between threads freely.
class UserTable {
 public:
  /// `previous` (may be null): users whose name it also has keep its UserLive, so connection
  /// counts survive the change.
  UserTable(uint64_t generation, std::vector<RelayUser> users, const UserTable* previous);

  uint64_t generation() const { return generation_; }
  size_t size() const { return by_name_.size(); }
  /// nullptr if there is no such user.
  const RelayUser* find(absl::string_view name) const;
  RelayUserPtr findShared(absl::string_view name) const;
  /// The enabled users of `port` (0: the shared port), in name order: the candidates of trial
  /// decryption. Empty if none.
  std::span<const RelayUserPtr> onPort(uint16_t port) const;
  /// Whether a session or association of `user` (from an older table) may go on under this
  /// table: the user is still here, enabled, under its quota, with the same key and port.
  bool keeps(const RelayUser& user) const;
  /// The distinct dedicated ports of enabled users, ascending.
  std::vector<uint16_t> dedicatedPorts() const;

 private:
  uint64_t generation_;
  absl::flat_hash_map<std::string, RelayUserPtr> by_name_;
  absl::flat_hash_map<uint16_t, std::vector<RelayUserPtr>> by_port_;
};

using UserTablePtr = std::shared_ptr<const UserTable>;

}  // namespace shadowrelay::relay
