// SPDX-License-Identifier: Apache-2.0
#pragma once
// Telling apart the users of one port: Shadowsocks carries no user name, so a server with
// several users on a port tries their keys on the first bytes of a connection (TCP: the salt and
// the first length header) or on a whole datagram (UDP) until one opens. To keep the number of
// trials low, the user last matched from the same client IP is tried first, then the port's
// users most recently matched first (outline-ss-server does the same).

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay {

/// One per worker; loop-thread only.
class UserMatcher {
 public:
  /// Client IPs remembered at most (the hints are dropped all at once beyond this).
  static constexpr size_t kMaxClientHints = 65536;

  /// Swaps in a new table. The order of users that remain is kept.
  void setTable(UserTablePtr table);
  const UserTablePtr& table() const { return table_; }
  /// The candidates of `port` (0: shared), in name order.
  std::span<const RelayUserPtr> candidates(uint16_t port) const;

  /// What the earlier matchStream() calls of one TCP stream established: with the table of
  /// `generation`, every user whose probe (salt + length header) fits in `tried_bytes` was
  /// tried on this stream and failed; a longer start cannot change that answer (the probe is a
  /// prefix). A start that arrives in small pieces so costs each key one trial, not one per read.
  /// A new table (another generation) starts over. Owned by the stream's session.
  struct StreamTrials {
    uint64_t generation = 0;
    size_t tried_bytes = 0;  // 0: nothing tried yet
  };

  enum class Outcome { Matched, NeedMore, NoMatch };
  /// Trial decryption of the start of a TCP stream from `client_ip` (raw address bytes) over the
  /// users of `port`. NeedMore: no user matched, but a user with a longer salt needs more bytes.
  /// `tried` (null: none kept): this stream's earlier trials, skipped now and updated.
  Outcome matchStream(uint16_t port, absl::string_view client_ip, std::span<const uint8_t> start,
                      RelayUserPtr* user, StreamTrials* tried = nullptr);
  /// The same for anything else: `opens(user)` says whether the input opens with user's key.
  /// nullptr when no user matched.
  RelayUserPtr match(uint16_t port, absl::string_view client_ip,
                     absl::FunctionRef<bool(const RelayUser&)> opens);

  /// Bounded trial decryption (UDP, issue 15 §1): tries at most `max_trials` users of `port`,
  /// starting at position `first` (modulo the port's user count) of its most recently matched
  /// order and wrapping, skipping `skip` (a user the caller already tried; may be null). No
  /// per-IP hint is read: the caller tries its own first. `*tried`: how many keys were tried;
  /// `*next`: where the window after this one starts. A match moves to the front and becomes
  /// `client_ip`'s hint, as in match(). nullptr when none of them opens.
  RelayUserPtr matchWindow(uint16_t port, absl::string_view client_ip, size_t first,
                           size_t max_trials, const RelayUser* skip,
                           absl::FunctionRef<bool(const RelayUser&)> opens, size_t* tried,
                           size_t* next);

  /// The user `client_ip` matched last (over TCP or UDP), if it is still an enabled user of
  /// `port`; nullptr otherwise. Nothing is tried.
  RelayUserPtr hintFor(uint16_t port, absl::string_view client_ip) const;

  /// Keys tried so far (each failed or successful trial counts one; a user passed over because
  /// the input is too short or the stream already failed with its key is no trial).
  uint64_t trials() const { return trials_; }

 private:
  RelayUserPtr matchIn(uint16_t port, absl::string_view client_ip,
                       absl::FunctionRef<bool(const RelayUser&)> opens);
  /// list[i] matched for `client_ip`: moved to the front and made the IP's hint; returned.
  RelayUserPtr promote(std::vector<RelayUserPtr>& list, size_t i, absl::string_view client_ip);

  UserTablePtr table_;
  /// Per port: the users, most recently matched first.
  absl::flat_hash_map<uint16_t, std::vector<RelayUserPtr>> order_;
  /// Client IP → name of the user it last matched.
  absl::flat_hash_map<std::string, std::string> last_by_ip_;
  uint64_t trials_ = 0;
};

}  // namespace shadowrelay::relay
