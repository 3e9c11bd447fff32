// SPDX-License-Identifier: Apache-2.0
#pragma once
// A grpc.reflection.v1alpha.ServerReflection client, as grpcurl uses it. The request and response
// types are the ones libgrpc++_reflection registers in the process's generated descriptor pool
// (Debian ships no reflection.proto to generate a stub from), driven through protobuf reflection
// and a generic gRPC stream.

#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

namespace shadowrelay::testing {

class ReflectionClient {
 public:
  /// `token`: sent as "authorization: Bearer <token>" unless empty.
  ReflectionClient(std::shared_ptr<grpc::Channel> channel, std::string token);

  /// Sends each request (ServerReflectionRequest in protobuf text format, e.g.
  /// `list_services: ""`) on one stream and reads one response after each.
  /// @return the stream's final status; `responses` gets what arrived.
  grpc::Status exchange(const std::vector<std::string>& requests,
                        std::vector<std::unique_ptr<google::protobuf::Message>>* responses);

  /// Service names of a list_services response.
  static std::vector<std::string> services(const google::protobuf::Message& response);
  /// Files of a file_descriptor response.
  static std::vector<google::protobuf::FileDescriptorProto> files(
      const google::protobuf::Message& response);
  /// error_code of an error response (0 if none).
  static int errorCode(const google::protobuf::Message& response);

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::string token_;
};

}  // namespace shadowrelay::testing
