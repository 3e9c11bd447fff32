// SPDX-License-Identifier: Apache-2.0
#include "api/users/user.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"

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

absl::string_view quotaPeriodName(QuotaPeriod period) {
  switch (period) {
    case QuotaPeriod::None:
      break;
    case QuotaPeriod::Daily:
      return "daily";
    case QuotaPeriod::Weekly:
      return "weekly";
    case QuotaPeriod::Monthly:
      return "monthly";
  }
  return "none";
}

absl::StatusOr<QuotaPeriod> parseQuotaPeriod(absl::string_view text) {
  for (QuotaPeriod p :
       {QuotaPeriod::None, QuotaPeriod::Daily, QuotaPeriod::Weekly, QuotaPeriod::Monthly}) {
    if (text == quotaPeriodName(p)) return p;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not a quota period (none, daily, weekly, monthly)"));
}

// Periods are counted in UTC: a server's local zone must not move its users' boundaries.
absl::Time periodStart(QuotaPeriod period, absl::Time t) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilDay day = absl::ToCivilDay(t, utc);
  switch (period) {
    case QuotaPeriod::None:
      break;
    case QuotaPeriod::Daily:
      return absl::FromCivil(day, utc);
    case QuotaPeriod::Weekly:
      // The Monday on or before `day` (ISO 8601 weeks).
      return absl::FromCivil(absl::PrevWeekday(day + 1, absl::Weekday::monday), utc);
    case QuotaPeriod::Monthly:
      return absl::FromCivil(absl::CivilMonth(day), utc);
  }
  return absl::InfinitePast();
}

absl::Time nextPeriodStart(QuotaPeriod period, absl::Time start) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilDay day = absl::ToCivilDay(start, utc);
  switch (period) {
    case QuotaPeriod::None:
      break;
    case QuotaPeriod::Daily:
      return absl::FromCivil(day + 1, utc);
    case QuotaPeriod::Weekly:
      return absl::FromCivil(absl::NextWeekday(day, absl::Weekday::monday), utc);
    case QuotaPeriod::Monthly:
      return absl::FromCivil(absl::CivilMonth(day) + 1, utc);
  }
  return absl::InfiniteFuture();
}

absl::Time User::quotaResetTime() const {
  if (limits.data_quota_period == QuotaPeriod::None || !quota_period_start.has_value()) {
    return absl::InfiniteFuture();
  }
  return nextPeriodStart(limits.data_quota_period, *quota_period_start);
}

absl::Time User::expiry() const {
  absl::Time at = expire_time.value_or(absl::InfiniteFuture());
  if (limits.expire_after_first_use > absl::ZeroDuration() && first_use.has_value()) {
    at = std::min(at, *first_use + limits.expire_after_first_use);
  }
  return at;
}

bool User::rollQuotaPeriod(absl::Time now) {
  if (limits.data_quota_period == QuotaPeriod::None) {
    const bool changed = quota_base_bytes != 0 || quota_period_start.has_value();
    quota_base_bytes = 0;
    quota_period_start.reset();
    return changed;
  }
  const absl::Time start = periodStart(limits.data_quota_period, now);
  if (quota_period_start == start) return false;
  // A new period (or a period newly set): the quota counts from here. Bytes the relay reports
  // just after a boundary may have moved just before it; they count in the new period.
  quota_base_bytes = traffic.totalBytes();
  quota_period_start = start;
  return true;
}

UserState stateOf(const User& user, absl::Time now) {
  if (!user.enabled) return UserState::Disabled;
  if (user.expiredAt(now)) return UserState::Expired;
  if (user.quotaExceeded()) return UserState::OverQuota;
  return UserState::Active;
}

absl::string_view stateName(UserState state) {
  switch (state) {
    case UserState::Active:
      break;
    case UserState::Disabled:
      return "disabled";
    case UserState::Expired:
      return "expired";
    case UserState::OverQuota:
      return "over_quota";
  }
  return "active";
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
