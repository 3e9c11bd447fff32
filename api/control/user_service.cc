// SPDX-License-Identifier: Apache-2.0
#include "api/control/user_service.h"

#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/control/grpc_status.h"
#include "relay/ss_uri.h"
#include "relay/users/device_tracker.h"

namespace shadowrelay::api::control {
namespace {

namespace v1 = ::shadowrelay::v1;

constexpr const char* kUpdatablePaths[] = {
    "method",
    "password",
    "key",
    "enabled",
    "expireTime",
    "plugin",
    "plugin_opts",
    "limits",
    "limits.max_connections",
    "limits.data_quota_bytes",
    "limits.expireAfterFirstUse",
    "limits.dataQuotaPeriod",
    "limits.max_devices",
    "limits.bytes_per_second",
};

v1::UserSource sourceToProto(users::UserSource source) {
  switch (source) {
    case users::UserSource::Api:
      return v1::USER_SOURCE_API;
    case users::UserSource::Config:
      return v1::USER_SOURCE_CONFIG;
    case users::UserSource::Default:
      return v1::USER_SOURCE_DEFAULT;
  }
  return v1::USER_SOURCE_UNSPECIFIED;
}

void setTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

absl::Time fromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

v1::UserState stateToProto(users::UserState state) {
  switch (state) {
    case users::UserState::Active:
      return v1::USER_STATE_ACTIVE;
    case users::UserState::Disabled:
      return v1::USER_STATE_DISABLED;
    case users::UserState::Expired:
      return v1::USER_STATE_EXPIRED;
    case users::UserState::OverQuota:
      return v1::USER_STATE_OVER_QUOTA;
  }
  return v1::USER_STATE_UNSPECIFIED;
}

v1::QuotaPeriod periodToProto(users::QuotaPeriod period) {
  switch (period) {
    case users::QuotaPeriod::None:
      return v1::QUOTA_PERIOD_NONE;
    case users::QuotaPeriod::Daily:
      return v1::QUOTA_PERIOD_DAILY;
    case users::QuotaPeriod::Weekly:
      return v1::QUOTA_PERIOD_WEEKLY;
    case users::QuotaPeriod::Monthly:
      return v1::QUOTA_PERIOD_MONTHLY;
  }
  return v1::QUOTA_PERIOD_UNSPECIFIED;
}

absl::StatusOr<users::QuotaPeriod> periodFromProto(v1::QuotaPeriod period) {
  switch (period) {
    case v1::QUOTA_PERIOD_UNSPECIFIED:
    case v1::QUOTA_PERIOD_NONE:
      return users::QuotaPeriod::None;
    case v1::QUOTA_PERIOD_DAILY:
      return users::QuotaPeriod::Daily;
    case v1::QUOTA_PERIOD_WEEKLY:
      return users::QuotaPeriod::Weekly;
    case v1::QUOTA_PERIOD_MONTHLY:
      return users::QuotaPeriod::Monthly;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("limits.data_quota_period: unknown value ", static_cast<int>(period)));
}

absl::StatusOr<absl::Duration> durationFromProto(const google::protobuf::Duration& d) {
  if (d.seconds() < 0 || d.nanos() < 0) {
    return absl::InvalidArgumentError("limits.expire_after_first_use: must not be negative");
  }
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

grpc::Status invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

/// UpdateUser: limits.expire_after_first_use and/or limits.data_quota_period into `update`.
grpc::Status takeTimeLimits(const v1::UserLimits& limits, bool after_first_use, bool period,
                            users::UserUpdate* update) {
  if (after_first_use) {
    auto d = durationFromProto(limits.expire_after_first_use());
    if (!d.ok()) return toGrpcStatus(d.status());
    update->expire_after_first_use = *d;
  }
  if (period) {
    auto p = periodFromProto(limits.data_quota_period());
    if (!p.ok()) return toGrpcStatus(p.status());
    update->data_quota_period = *p;
  }
  return grpc::Status::OK;
}

/// User.devices: what the user's tracker (shared by the workers) counts now, then the devices
/// only other replicas count (etcd store), known here by their id alone.
void setDevices(const relay::RelayUser* user, const ClientAddresses& addresses,
                const relay::DeviceIds& ids, v1::DeviceUsage* out) {
  if (user == nullptr) {
    out->set_count(0);
    return;
  }
  const std::vector<relay::DeviceTracker::Device> devices =
      user->live->devices->devices(user->device_window);
  const std::vector<std::string> elsewhere = user->live->devices->remoteOnly(user->device_window);
  out->set_count(static_cast<uint32_t>(devices.size() + elsewhere.size()));
  const absl::Time now = absl::Now();
  for (const relay::DeviceTracker::Device& device : devices) {
    v1::Device* d = out->add_list();
    d->set_address(addresses.display(device.key, ids));
    d->set_active(device.active);
    setTimestamp(now - absl::FromChrono(device.since_seen), d->mutable_last_seen());
  }
  for (const std::string& id : elsewhere) out->add_list()->set_address(id);
}

}  // namespace

void UserService::toProto(const users::User& user, bool with_secrets,
                          const relay::UserTable& table, v1::User* out) const {
  const uint16_t port = user.port == 0 ? registry_.sharedPort() : user.port;
  out->set_name(user.name);
  out->set_method(user.method);
  out->set_port(port);
  out->set_dedicated_port(user.port != 0);
  out->set_enabled(user.enabled);
  out->set_source(sourceToProto(user.source));
  out->set_quota_exceeded(user.quotaExceeded());
  out->set_state(stateToProto(users::stateOf(user, registry_.now())));
  setTimestamp(user.created, out->mutable_create_time());
  if (user.expire_time.has_value()) setTimestamp(*user.expire_time, out->mutable_expire_time());
  if (user.first_use.has_value()) setTimestamp(*user.first_use, out->mutable_first_use_time());
  out->set_quota_used_bytes(user.quotaUsedBytes());
  if (const absl::Time reset = user.quotaResetTime(); reset != absl::InfiniteFuture()) {
    setTimestamp(reset, out->mutable_quota_reset_time());
  }
  v1::TrafficCounters* traffic = out->mutable_traffic();
  traffic->set_bytes_up(user.traffic.bytes_up);
  traffic->set_bytes_down(user.traffic.bytes_down);
  traffic->set_tcp_connections(user.traffic.tcp_connections);
  traffic->set_udp_packets(user.traffic.udp_packets);
  out->mutable_limits()->set_max_connections(user.limits.max_connections);
  out->mutable_limits()->set_data_quota_bytes(user.limits.data_quota_bytes);
  if (user.limits.expire_after_first_use > absl::ZeroDuration()) {
    const absl::Duration d = user.limits.expire_after_first_use;
    const int64_t whole = absl::ToInt64Seconds(d);  // truncates
    out->mutable_limits()->mutable_expire_after_first_use()->set_seconds(whole);
    out->mutable_limits()->mutable_expire_after_first_use()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(whole))));
  }
  out->mutable_limits()->set_data_quota_period(periodToProto(user.limits.data_quota_period));
  out->mutable_limits()->set_max_devices(user.limits.max_devices);
  setDevices(table.find(user.name), addresses_, *registry_.deviceIds(), out->mutable_devices());
  out->mutable_limits()->set_bytes_per_second(user.limits.bytes_per_second);
  out->set_plugin(user.plugin);
  if (with_secrets) {
    out->set_password(user.password);
    out->set_key(user.key);
    out->set_plugin_opts(user.plugin_opts);
    // Empty for a 2017 raw key (SIP002 has no form for it) and for -k on a port whose 2022
    // users send identity headers (there it is the identity key only): no URL then.
    if (const std::string client = registry_.clientPassword(user); !client.empty()) {
      // The user's own plugin on its port; on the shared port, the server's --plugin.
      const std::string plugin = !user.plugin.empty()
                                     ? relay::clientPluginParameter(user.plugin, user.plugin_opts)
                                 : user.port == 0 ? shared_port_plugin_
                                                  : std::string();
      out->set_access_url(
          relay::makeSsUri(user.method, client, public_host_, port, user.name, plugin));
    }
  }
}

grpc::Status UserService::CreateUser(grpc::ServerContext* /*context*/,
                                     const v1::CreateUserRequest* request, v1::User* response) {
  if (request->port() > std::numeric_limits<uint16_t>::max()) {
    return invalid(absl::StrCat("port: ", request->port(), " is not in 0..65535"));
  }
  users::NewUser user;
  user.name = request->name();
  user.method = request->method();
  user.password = request->password();
  user.key = request->key();
  user.port = static_cast<uint16_t>(request->port());
  user.enabled = request->has_enabled() ? request->enabled() : true;
  user.limits.max_connections = request->limits().max_connections();
  user.limits.data_quota_bytes = request->limits().data_quota_bytes();
  auto after_first_use = durationFromProto(request->limits().expire_after_first_use());
  if (!after_first_use.ok()) return toGrpcStatus(after_first_use.status());
  user.limits.expire_after_first_use = *after_first_use;
  auto period = periodFromProto(request->limits().data_quota_period());
  if (!period.ok()) return toGrpcStatus(period.status());
  user.limits.data_quota_period = *period;
  if (request->has_expire_time()) user.expire_time = fromTimestamp(request->expire_time());
  user.limits.max_devices = request->limits().max_devices();
  user.limits.bytes_per_second = request->limits().bytes_per_second();
  user.plugin = request->plugin();
  user.plugin_opts = request->plugin_opts();
  auto created = registry_.create(user);
  if (!created.ok()) {
    return toGrpcStatus(created.status());
  }
  toProto(*created, /*with_secrets=*/true, *registry_.snapshot(), response);
  return grpc::Status::OK;
}

grpc::Status UserService::GetUser(grpc::ServerContext* /*context*/,
                                  const v1::GetUserRequest* request, v1::User* response) {
  auto user = registry_.get(request->name());
  if (!user.ok()) {
    return toGrpcStatus(user.status());
  }
  toProto(*user, /*with_secrets=*/true, *registry_.snapshot(), response);
  return grpc::Status::OK;
}

grpc::Status UserService::ListUsers(grpc::ServerContext* /*context*/,
                                    const v1::ListUsersRequest* /*request*/,
                                    v1::ListUsersResponse* response) {
  const relay::UserTablePtr table = registry_.snapshot();
  for (const users::User& user : registry_.list()) {
    toProto(user, /*with_secrets=*/false, *table, response->add_users());
  }
  return grpc::Status::OK;
}

grpc::Status UserService::UpdateUser(grpc::ServerContext* /*context*/,
                                     const v1::UpdateUserRequest* request, v1::User* response) {
  if (request->user().name().empty()) {
    return invalid("user.name: required (it selects the user to update)");
  }
  if (request->update_mask().paths_size() == 0) {
    return invalid(absl::StrCat("update_mask: name the fields to change (",
                                absl::StrJoin(kUpdatablePaths, ", "), ")"));
  }
  const v1::User& in = request->user();
  users::UserUpdate update;
  for (const std::string& path : request->update_mask().paths()) {
    if (path == "method") {
      update.method = in.method();
    } else if (path == "password") {
      update.password = in.password();
    } else if (path == "key") {
      update.key = in.key();
    } else if (path == "enabled") {
      update.enabled = in.enabled();
    } else if (path == "plugin") {
      update.plugin = in.plugin();
    } else if (path == "plugin_opts") {
      update.plugin_opts = in.plugin_opts();
    } else if (path == "expireTime" || path == "expire_time") {
      update.expire_time = in.has_expire_time()
                               ? std::optional<absl::Time>(fromTimestamp(in.expire_time()))
                               : std::nullopt;
    } else if (path == "limits") {
      update.max_connections = in.limits().max_connections();
      update.data_quota_bytes = in.limits().data_quota_bytes();
      if (grpc::Status s = takeTimeLimits(in.limits(), true, true, &update); !s.ok()) return s;
      update.max_devices = in.limits().max_devices();
      update.bytes_per_second = in.limits().bytes_per_second();
    } else if (path == "limits.max_connections") {
      update.max_connections = in.limits().max_connections();
    } else if (path == "limits.data_quota_bytes") {
      update.data_quota_bytes = in.limits().data_quota_bytes();
    } else if (path == "limits.expireAfterFirstUse" || path == "limits.expire_after_first_use") {
      if (grpc::Status s = takeTimeLimits(in.limits(), true, false, &update); !s.ok()) return s;
    } else if (path == "limits.dataQuotaPeriod" || path == "limits.data_quota_period") {
      if (grpc::Status s = takeTimeLimits(in.limits(), false, true, &update); !s.ok()) return s;
    } else if (path == "limits.max_devices" || path == "limits.maxDevices") {
      update.max_devices = in.limits().max_devices();
    } else if (path == "limits.bytes_per_second" || path == "limits.bytesPerSecond") {
      update.bytes_per_second = in.limits().bytes_per_second();
    } else {
      return invalid(absl::StrCat("update_mask: \"", path, "\" cannot be changed (allowed: ",
                                  absl::StrJoin(kUpdatablePaths, ", "), ")"));
    }
  }
  auto updated = registry_.update(in.name(), update);
  if (!updated.ok()) {
    return toGrpcStatus(updated.status());
  }
  toProto(*updated, /*with_secrets=*/true, *registry_.snapshot(), response);
  return grpc::Status::OK;
}

grpc::Status UserService::DeleteUser(grpc::ServerContext* /*context*/,
                                     const v1::DeleteUserRequest* request,
                                     v1::DeleteUserResponse* /*response*/) {
  return toGrpcStatus(registry_.remove(request->name()));
}

}  // namespace shadowrelay::api::control
