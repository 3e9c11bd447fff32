// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/users/user.h"
#include "api/users/user_store.h"

namespace shadowrelay::api::users {

/// A user's traffic as a total (not a delta): what other servers counted.
struct TrafficTotal {
  std::string name;
  TrafficCounters total;
  /// The earliest first use the other servers saw (unset: none yet). A first use travels with
  /// the traffic, not as a change of the user: thousands of users starting at once would
  /// otherwise make as many configuration changes, each a table rebuild on every server.
  std::optional<absl::Time> first_use;
  /// What the other servers counted in each quota period they count for the user (renewing
  /// quotas): (period start, bytes up and down in it), one entry per start. A new period is
  /// no configuration change either: each server counts its own bytes in it.
  std::vector<std::pair<absl::Time, uint64_t>> period_bytes;
};

/// A user's live counts (issue 19 §2): what one server publishes for it (its own), or what the
/// other servers published together (their sum and union).
struct LiveCount {
  std::string name;
  uint32_t connections = 0;  // TCP sessions open now
  /// The devices that count now (relay::DeviceTracker), by their id under the cluster's
  /// DeviceIds (applyDeviceKey()), sorted, each once.
  std::vector<std::string> devices;
  bool operator==(const LiveCount&) const = default;
};

/// Who hears what the other servers of a SharedStore changed: the UserRegistry.
class SharedStoreListener {
 public:
  virtual ~SharedStoreListener() = default;
  /// The whole shared configuration changed (by any server, or a re-list): the listener takes
  /// its write lock, then calls `read` for it as it is now (API users with zero traffic, the
  /// default method, the identity keys). Read under the lock, not before: a change the
  /// listener writes while a delivery waits for the lock must not be undone by an older state
  /// (it was: 44 of 60 back-to-back creates vanished from the creating server's table). Called
  /// from the store's threads, one call at a time.
  virtual void applyShared(absl::FunctionRef<StoreContents()> read) = 0;
  /// What the other servers (and those gone) counted for these users, cumulative since each
  /// user was created. Called from the store's thread.
  virtual void applyRemoteTraffic(std::span<const TrafficTotal> totals) = 0;
  /// The cluster's secret for device ids (etcd's `device_key`): from now on devices are
  /// published and compared by relay::DeviceIds::fromSecret(secret). Called from the store's
  /// threads before the first liveCounts() and applyRemoteLive(), and again if it changes.
  virtual void applyDeviceKey(const std::string& secret) = 0;
  /// What the other servers have live for these users now (connections summed, devices
  /// united); a user whose count is zero and device list empty has nothing live elsewhere.
  /// Called from the store's threads, one call at a time.
  virtual void applyRemoteLive(std::span<const LiveCount> totals) = 0;
  /// This server's live counts of the users with max_connections or max_devices that have
  /// something live (a session, or a device within the window), for the others. Called from
  /// the store's thread at each sync interval.
  virtual std::vector<LiveCount> liveCounts() const = 0;
};

/// The users, defaults and identity keys shared by several servers (the etcd store): the
/// registry writes its changes here, conditioned on the state it made them from, and hears the
/// changes of the others through SharedStoreListener. --state-dir then only caches the last
/// table, so that a server can start while the store is down.
class SharedStore {
 public:
  virtual ~SharedStore() = default;
  /// Reads the whole configuration (users carry the traffic the other servers counted).
  /// UNAVAILABLE when the store cannot be reached in time.
  virtual absl::StatusOr<StoreContents> load() = 0;
  /// Follows the changes from then on (from load()'s revision, or from a full read once the
  /// store can be reached). `listener` must outlive the store or stop().
  virtual void start(SharedStoreListener* listener) = 0;
  /// Stops following and flushes this server's traffic (best effort). Idempotent.
  virtual void stop() = 0;
  /// Makes the store hold `after` (a change made from the state the listener last heard; the
  /// store writes only what differs, traffic left out). ABORTED when another server changed
  /// the store since: wait with catchUp() and make the change again from the new state.
  /// ABORTED too when the store's answer to the write was lost and the write was not made; a
  /// write whose answer was lost and that was made is OK. UNAVAILABLE when the store cannot be
  /// reached; nothing is written then, unless the answer to a write that reached it was lost
  /// and the store could not tell in time whether it was made (it is heard when it answers).
  virtual absl::Status write(const StoreContents& after) = 0;
  /// Waits until every change the store holds now has reached the listener (bounded).
  virtual absl::Status catchUp(absl::Duration timeout) = 0;
  /// Traffic this server relayed (deltas), shared with the others at the next sync.
  virtual void addTraffic(std::span<const TrafficDelta> deltas) = 0;
  /// A quota period of `name` that starts at `start` begins on this server (its first, a
  /// boundary, or a new period setting, even one of the same start): its bytes in it count
  /// from what it relayed until now, shared with the others at the next sync. nullopt: the
  /// user has no renewing quota any more.
  virtual void startPeriod(absl::string_view name, std::optional<absl::Time> start) = 0;
  /// Where the store is, for messages ("etcd http://a:2379,... prefix /shadowrelay/").
  virtual std::string describe() const = 0;
};

}  // namespace shadowrelay::api::users
