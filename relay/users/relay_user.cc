// SPDX-License-Identifier: Apache-2.0
#include "relay/users/relay_user.h"

#include <algorithm>

namespace shadowrelay::relay {

bool UserLive::admitsDatagram(size_t dir, size_t n, int64_t now) {
  const uint64_t limit = bytes_per_second.load(std::memory_order_relaxed);
  return limit == 0 || rate[dir].tryTake(limit, n, now);
}

bool RelayUser::sameKey(const RelayUser& other) const {
  const auto a = key.bytes();
  const auto b = other.key.bytes();
  return method == other.method && std::equal(a.begin(), a.end(), b.begin(), b.end());
}

bool RelayUser::admitsNewSession(uint32_t others) const {
  if (!enabled || quota_exceeded) return false;
  if (max_connections == 0) return true;
  // Summed in 64 bits: the remote count comes from other servers.
  const uint64_t open =
      uint64_t{others} + live->remote_tcp_sessions.load(std::memory_order_relaxed);
  return open < max_connections;
}

std::optional<DeviceLease> RelayUser::admitDevice(const std::string& key) const {
  switch (live->devices->acquire(key, max_devices, device_window)) {
    case DeviceTracker::Admission::Counted:
      return DeviceLease(live->devices, key);
    case DeviceTracker::Admission::Uncounted:
      return DeviceLease();
    case DeviceTracker::Admission::Refused:
      break;
  }
  return std::nullopt;
}

}  // namespace shadowrelay::relay
