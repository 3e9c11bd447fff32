// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shadowrelay::api::users {

/// Where a user comes from. Only Api users can be changed or removed through the control API.
enum class UserSource { Api, Config, Default };

/// "api", "config" or "default".
absl::string_view sourceName(UserSource source);

/// Zero means unlimited.
struct UserLimits {
  uint32_t max_connections = 0;   // concurrent TCP sessions
  uint64_t data_quota_bytes = 0;  // bytes_up + bytes_down since creation
  uint64_t bytes_per_second = 0;  // each direction; 0: the server's default
  bool operator==(const UserLimits&) const = default;
};

/// Traffic since the user was created (or a delta of it, in UserRegistry::addTraffic).
struct TrafficCounters {
  uint64_t bytes_up = 0;    // client to target
  uint64_t bytes_down = 0;  // target to client
  uint64_t tcp_connections = 0;
  uint64_t udp_packets = 0;

  TrafficCounters& operator+=(const TrafficCounters& other);
  uint64_t totalBytes() const { return bytes_up + bytes_down; }
  bool operator==(const TrafficCounters&) const = default;
};

/// A user as the registry and the store keep it. Exactly one of `password` and `key` is set.
/// Holds a secret: never log it whole (name, method and port are fine).
struct User {
  std::string name;
  std::string method;    // canonical name, e.g. "aes-256-gcm"
  std::string password;  // EVP_BytesToKey password
  std::string key;       // raw master key, base64
  uint16_t port = 0;     // a dedicated port; 0: the server's shared port
  bool enabled = true;
  UserLimits limits;
  std::string plugin;       // a dedicated port's SIP003 plugin program (server side); empty: none
  std::string plugin_opts;  // its SS_PLUGIN_OPTIONS (may hold secrets: never logged)
  absl::Time created = absl::UnixEpoch();
  TrafficCounters traffic;
  UserSource source = UserSource::Api;

  bool quotaExceeded() const {
    return limits.data_quota_bytes != 0 && traffic.totalBytes() >= limits.data_quota_bytes;
  }
  bool operator==(const User&) const = default;
};

inline constexpr size_t kMaxUserNameLength = 64;

/// 1..64 characters of [A-Za-z0-9._-], starting with a letter or a digit. INVALID_ARGUMENT
/// naming the rule otherwise.
absl::Status validateUserName(absl::string_view name);

}  // namespace shadowrelay::api::users
