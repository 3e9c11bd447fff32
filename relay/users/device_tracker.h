// SPDX-License-Identifier: Apache-2.0
#pragma once
// The devices of one user (issue 18 §1): the distinct client networks (an IPv4 address, an IPv6
// /64) that used it lately, for max_devices and User.devices. Shared by every worker through
// UserLive; touched only when a session or association starts and ends, never per packet. With an
// etcd store it also holds the devices the other replicas count (issue 19 §2), by id.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "relay/users/device_ids.h"

namespace shadowrelay::relay {

/// Counts a user's devices. A device counts while it has a live session or association
/// (acquire() without its release()) or had one within the window. Holds at most
/// max(max_devices, kMinCapacity) devices; ones past the window are forgotten when room is
/// needed. The other replicas' devices (setRemote()) count against max_devices too. Thread-safe
/// (one short mutex).
class DeviceTracker {
 public:
  using Clock = std::chrono::steady_clock;
  /// Devices a user without a limit (or with a smaller one) may have tracked: more are relayed
  /// but not listed, and each makes room by forgetting the one seen longest ago.
  static constexpr size_t kMinCapacity = 256;

  /// `now` is the clock (injected by tests).
  explicit DeviceTracker(std::function<Clock::time_point()> now = &Clock::now)
      : now_(std::move(now)) {}

  enum class Admission {
    Counted,    ///< counted until release(key)
    Uncounted,  ///< no limit, and kMinCapacity devices are active: relayed, not listed
    Refused,    ///< a new device, and max_devices count already: nothing recorded
  };
  /// A session or association of device `key` (sourceKey(): 4 bytes of IPv4, 8 of an IPv6
  /// /64) starts; `max_devices` 0 is no limit. A device new here is refused when this server's
  /// devices and the other replicas' (setRemote()) together reach max_devices, unless the other
  /// replicas count it already (it adds no device to the user then).
  Admission acquire(const std::string& key, uint32_t max_devices, Clock::duration window);
  /// The session or association of a Counted acquire() ended now.
  void release(const std::string& key);

  struct Device {
    std::string key;
    bool active = false;            // a session or association is open now
    Clock::duration since_seen{0};  // 0 while active; else since the last one ended
  };
  /// The devices that count now (within `window`), active first, then the most recent first.
  std::vector<Device> devices(Clock::duration window) const;
  /// How many devices count now (within `window`) on this server.
  size_t count(Clock::duration window) const;

  /// The devices the other replicas count for this user now, by their id under `ids` (the
  /// cluster's DeviceIds), as they last published them. Replaces the previous set (empty:
  /// none). Called from the store's thread.
  void setRemote(DeviceIdsPtr ids, absl::flat_hash_set<std::string> remote);
  /// The ids under `ids` of this server's devices that count now (within `window`), sorted:
  /// what this server publishes for the others.
  std::vector<std::string> ids(const DeviceIdsPtr& ids, Clock::duration window);
  /// The other replicas' devices (setRemote()) that are none of this server's counting now,
  /// by id, sorted. With devices(), the user's devices in the whole cluster.
  std::vector<std::string> remoteOnly(Clock::duration window);

  /// "192.0.2.1" for an IPv4 key, "2001:db8:1:2::/64" for an IPv6 /64 key; "" otherwise.
  static std::string keyText(const std::string& key);

 private:
  struct Entry {
    uint32_t active = 0;  // open sessions and associations
    Clock::time_point last_seen;
    std::string id;  // under ids_, computed when first needed ("": not yet)
  };
  static bool counts(const Entry& entry, Clock::time_point now, Clock::duration window) {
    return entry.active > 0 || now - entry.last_seen < window;
  }
  /// Forgets the devices past `window`.
  void expireLocked(Clock::time_point now, Clock::duration window)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Ids are under `ids` from now on (cached ones under another key are dropped).
  void useIdsLocked(const DeviceIdsPtr& ids) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::string& idLocked(const std::string& key, Entry& entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// How many of remote_ are none of the devices counting now.
  size_t remoteOnlyCountLocked(Clock::time_point now, Clock::duration window)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<Clock::time_point()> now_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  DeviceIdsPtr ids_ ABSL_GUARDED_BY(mu_);  // null until setRemote() or ids()
  absl::flat_hash_set<std::string> remote_ ABSL_GUARDED_BY(mu_);
};

/// One counted session or association of a device: releases it when destroyed or reset
/// (move-only). Holds the tracker, which may outlive its user's table.
class DeviceLease {
 public:
  DeviceLease() = default;
  DeviceLease(std::shared_ptr<DeviceTracker> tracker, std::string key)
      : tracker_(std::move(tracker)), key_(std::move(key)) {}
  DeviceLease(DeviceLease&& other) noexcept = default;
  DeviceLease& operator=(DeviceLease&& other) noexcept {
    if (this != &other) {
      reset();
      tracker_ = std::move(other.tracker_);
      key_ = std::move(other.key_);
    }
    return *this;
  }
  ~DeviceLease() { reset(); }

  void reset() {
    if (tracker_ != nullptr) tracker_->release(key_);
    tracker_.reset();
  }
  bool held() const { return tracker_ != nullptr; }

 private:
  std::shared_ptr<DeviceTracker> tracker_;
  std::string key_;
};

}  // namespace shadowrelay::relay
