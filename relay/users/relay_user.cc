// SPDX-License-Identifier: Apache-2.0
#include "relay/users/relay_user.h"

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

DeviceLease RelayUser::admitDevice(const std::string& key, bool* refused) const {
  const DeviceTracker::Admission admission =
      live->devices->acquire(key, max_devices, device_window);
  *refused = admission == DeviceTracker::Admission::Refused;
  if (admission != DeviceTracker::Admission::Counted) return {};
  return DeviceLease(live->devices, key);
}

}  // namespace shadowrelay::relay
