// SPDX-License-Identifier: Apache-2.0
#pragma once
// absl::Status to grpc::Status: the codes have the same numbers.

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace shadowrelay::api::control {

inline grpc::Status toGrpcStatus(const absl::Status& status) {
  if (status.ok()) {
    return grpc::Status::OK;
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace shadowrelay::api::control
