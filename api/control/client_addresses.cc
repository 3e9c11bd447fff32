// SPDX-License-Identifier: Apache-2.0
#include "api/control/client_addresses.h"

#include "relay/users/device_tracker.h"

namespace shadowrelay::api::control {

std::string ClientAddresses::display(absl::string_view device_key,
                                     const relay::DeviceIds& ids) const {
  if (show_) return relay::DeviceTracker::keyText(std::string(device_key));
  return ids.id(device_key);
}

}  // namespace shadowrelay::api::control
