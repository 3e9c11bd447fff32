// SPDX-License-Identifier: Apache-2.0
#include "api/users/user.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace shadowrelay::api::users {

absl::string_view sourceName(UserSource source) {
  switch (source) {
    case UserSource::Api:
      return "api";
    case UserSource::Config:
      return "config";
    case UserSource::Default:
      return "default";
  }
  return "unknown";
}

TrafficCounters& TrafficCounters::operator+=(const TrafficCounters& other) {
  bytes_up += other.bytes_up;
  bytes_down += other.bytes_down;
  tcp_connections += other.tcp_connections;
  udp_packets += other.udp_packets;
  return *this;
}

absl::Status validateUserName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxUserNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: must be 1 to ", kMaxUserNameLength, " characters"));
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    return absl::InvalidArgumentError("name: must start with a letter or a digit");
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError("name: only letters, digits, '.', '_' and '-' are allowed");
    }
  }
  return absl::OkStatus();
}

}  // namespace shadowrelay::api::users
