// SPDX-License-Identifier: Apache-2.0
#include "api/control/user_service.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/control/grpc_status.h"
#include "relay/ss_uri.h"

namespace shadowrelay::api::control {
namespace {

namespace v1 = ::shadowrelay::v1;

constexpr const char* kUpdatablePaths[] = {
    "method",
    "password",
    "key",
    "enabled",
    "plugin",
    "plugin_opts",
    "limits",
    "limits.max_connections",
    "limits.data_quota_bytes",
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

grpc::Status invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

}  // namespace

void UserService::toProto(const users::User& user, bool with_secrets, v1::User* out) const {
  const uint16_t port = user.port == 0 ? registry_.sharedPort() : user.port;
  out->set_name(user.name);
  out->set_method(user.method);
  out->set_port(port);
  out->set_dedicated_port(user.port != 0);
  out->set_enabled(user.enabled);
  out->set_source(sourceToProto(user.source));
  out->set_quota_exceeded(user.quotaExceeded());
  const int64_t seconds = absl::ToUnixSeconds(user.created);
  out->mutable_create_time()->set_seconds(seconds);
  out->mutable_create_time()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(user.created - absl::FromUnixSeconds(seconds))));
  v1::TrafficCounters* traffic = out->mutable_traffic();
  traffic->set_bytes_up(user.traffic.bytes_up);
  traffic->set_bytes_down(user.traffic.bytes_down);
  traffic->set_tcp_connections(user.traffic.tcp_connections);
  traffic->set_udp_packets(user.traffic.udp_packets);
  out->mutable_limits()->set_max_connections(user.limits.max_connections);
  out->mutable_limits()->set_data_quota_bytes(user.limits.data_quota_bytes);
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
  user.limits.bytes_per_second = request->limits().bytes_per_second();
  user.plugin = request->plugin();
  user.plugin_opts = request->plugin_opts();
  auto created = registry_.create(user);
  if (!created.ok()) {
    return toGrpcStatus(created.status());
  }
  toProto(*created, /*with_secrets=*/true, response);
  return grpc::Status::OK;
}

grpc::Status UserService::GetUser(grpc::ServerContext* /*context*/,
                                  const v1::GetUserRequest* request, v1::User* response) {
  auto user = registry_.get(request->name());
  if (!user.ok()) {
    return toGrpcStatus(user.status());
  }
  toProto(*user, /*with_secrets=*/true, response);
  return grpc::Status::OK;
}

grpc::Status UserService::ListUsers(grpc::ServerContext* /*context*/,
                                    const v1::ListUsersRequest* /*request*/,
                                    v1::ListUsersResponse* response) {
  for (const users::User& user : registry_.list()) {
    toProto(user, /*with_secrets=*/false, response->add_users());
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
    } else if (path == "limits") {
      update.max_connections = in.limits().max_connections();
      update.data_quota_bytes = in.limits().data_quota_bytes();
      update.bytes_per_second = in.limits().bytes_per_second();
    } else if (path == "limits.max_connections") {
      update.max_connections = in.limits().max_connections();
    } else if (path == "limits.data_quota_bytes") {
      update.data_quota_bytes = in.limits().data_quota_bytes();
    } else if (path == "limits.bytes_per_second") {
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
  toProto(*updated, /*with_secrets=*/true, response);
  return grpc::Status::OK;
}

grpc::Status UserService::DeleteUser(grpc::ServerContext* /*context*/,
                                     const v1::DeleteUserRequest* request,
                                     v1::DeleteUserResponse* /*response*/) {
  return toGrpcStatus(registry_.remove(request->name()));
}

}  // namespace shadowrelay::api::control
