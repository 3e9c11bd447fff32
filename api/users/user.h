// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shadowrelay::api::users {

/// Where a user comes from. Only Api users can be changed or removed through the control API.
enum class UserSource { Api, Config, Default };

/// "api", "config" or "default".
absl::string_view sourceName(UserSource source);

/// When a data quota starts again from zero: never (None), or at 00:00 UTC of every day, of
/// every Monday (Weekly), of the first day of every month (Monthly).
enum class QuotaPeriod { None, Daily, Weekly, Monthly };

/// "none", "daily", "weekly", "monthly".
absl::string_view quotaPeriodName(QuotaPeriod period);
/// The inverse of quotaPeriodName(); INVALID_ARGUMENT naming the allowed values otherwise.
absl::StatusOr<QuotaPeriod> parseQuotaPeriod(absl::string_view text);
/// The start of the period holding `t` (for None: the infinite past).
absl::Time periodStart(QuotaPeriod period, absl::Time t);
/// The first boundary after the period that started at `start` (for None: the infinite future).
absl::Time nextPeriodStart(QuotaPeriod period, absl::Time start);

/// Zero means unlimited.
struct UserLimits {
  uint32_t max_connections = 0;   // concurrent TCP sessions
  uint64_t data_quota_bytes = 0;  // bytes_up + bytes_down in the quota period
  /// The user expires this long after its first use (first_use). Zero: never.
  absl::Duration expire_after_first_use = absl::ZeroDuration();
  QuotaPeriod data_quota_period = QuotaPeriod::None;  // None: since creation
  uint32_t max_devices = 0;       // client networks (IPv4, IPv6 /64) within --device-window
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

/// Traffic of one user since the last report.
struct TrafficDelta {
  std::string name;
  TrafficCounters delta;
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
  /// Stops working from then on, as if disabled. Unset: never.
  std::optional<absl::Time> expire_time;
  /// When the relay first reported traffic of the user (connections or datagrams). Unset: not
  /// yet.
  std::optional<absl::Time> first_use;
  /// traffic.totalBytes() when the current quota period began: the quota counts what is above.
  /// Always 0 with QuotaPeriod::None.
  uint64_t quota_base_bytes = 0;
  /// Start of the current quota period (unset with QuotaPeriod::None).
  std::optional<absl::Time> quota_period_start;

  /// Bytes counted against the data quota: in the current period, or since creation.
  uint64_t quotaUsedBytes() const {
    const uint64_t total = traffic.totalBytes();
    return total > quota_base_bytes ? total - quota_base_bytes : 0;
  }
  bool quotaExceeded() const {
    return limits.data_quota_bytes != 0 && quotaUsedBytes() >= limits.data_quota_bytes;
  }
  /// When the quota counts from zero again; the infinite future without a period.
  absl::Time quotaResetTime() const;
  /// The earlier of expire_time and first_use + expire_after_first_use; the infinite future if
  /// neither applies.
  absl::Time expiry() const;
  bool expiredAt(absl::Time now) const { return expiry() <= now; }
  /// Makes the quota period hold `now`: a new period counts from zero. Switching to None
  /// counts since creation again. @return whether anything changed.
  bool rollQuotaPeriod(absl::Time now);
  bool operator==(const User&) const = default;
};

/// What a user is now, as UserService shows it (User.state) and shadowrelay_users counts it.
/// Disabled wins over Expired, which wins over OverQuota.
enum class UserState { Active, Disabled, Expired, OverQuota };
UserState stateOf(const User& user, absl::Time now);
/// "active", "disabled", "expired", "over_quota" (the state label of shadowrelay_users).
absl::string_view stateName(UserState state);
inline constexpr int kUserStateCount = 4;

inline constexpr size_t kMaxUserNameLength = 64;

/// 1..64 characters of [A-Za-z0-9._-], starting with a letter or a digit. INVALID_ARGUMENT
/// naming the rule otherwise.
absl::Status validateUserName(absl::string_view name);

}  // namespace shadowrelay::api::users
