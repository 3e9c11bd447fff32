// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>

#include "api/control/client_addresses.h"
#include "api/users/user.h"
#include "api/users/user_registry.h"
#include "relay/users/user_table.h"
#include "shadowrelay/v1/users.grpc.pb.h"

namespace shadowrelay::api::control {

/// shadowrelay.v1.UserService on a UserRegistry (not owned; must outlive the service).
/// Called on gRPC threads.
class UserService final : public shadowrelay::v1::UserService::Service {
 public:
  /// `public_host`: the host in access URLs.
  /// `shared_port_plugin`: the SIP002 plugin value of the server's --plugin, for the access
  /// URLs of shared-port users ("" without one).
  /// `show_client_addresses`: User.devices shows addresses as text, not hashed.
  UserService(users::UserRegistry& registry, std::string public_host,
              std::string shared_port_plugin = "", bool show_client_addresses = false)
      : registry_(registry),
        public_host_(std::move(public_host)),
        shared_port_plugin_(std::move(shared_port_plugin)),
        addresses_(show_client_addresses) {}

  grpc::Status CreateUser(grpc::ServerContext* context,
                          const shadowrelay::v1::CreateUserRequest* request,
                          shadowrelay::v1::User* response) override;
  grpc::Status GetUser(grpc::ServerContext* context, const shadowrelay::v1::GetUserRequest* request,
                       shadowrelay::v1::User* response) override;
  grpc::Status ListUsers(grpc::ServerContext* context,
                         const shadowrelay::v1::ListUsersRequest* request,
                         shadowrelay::v1::ListUsersResponse* response) override;
  grpc::Status UpdateUser(grpc::ServerContext* context,
                          const shadowrelay::v1::UpdateUserRequest* request,
                          shadowrelay::v1::User* response) override;
  grpc::Status DeleteUser(grpc::ServerContext* context,
                          const shadowrelay::v1::DeleteUserRequest* request,
                          shadowrelay::v1::DeleteUserResponse* response) override;

  /// The API view of a user; `with_secrets` adds password, key and access URL. Its devices
  /// are those of `table`'s user of that name (the current snapshot).
  void toProto(const users::User& user, bool with_secrets, const relay::UserTable& table,
               shadowrelay::v1::User* out) const;

 private:
  users::UserRegistry& registry_;
  const std::string public_host_;
  const std::string shared_port_plugin_;
  const ClientAddresses addresses_;
};

}  // namespace shadowrelay::api::control
