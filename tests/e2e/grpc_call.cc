// SPDX-License-Identifier: Apache-2.0
// A small grpcurl for the end-to-end tests (grpcurl is not packaged in Debian): calls one unary
// method of the control API with a JSON request and prints the JSON response.
//
//   grpc_call ADDRESS TOKEN shadowrelay.v1.UserService/CreateUser '{"name": "alice"}'
//
// TOKEN "-" sends no authorization header. The request and response types come from the
// descriptors linked into this binary; messages are converted with protobuf's JSON mapping, as
// grpcurl does. Exit 0 on OK; otherwise prints "ERROR <code name>: <message>" and exits 3.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_replace.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"
// Linked for their descriptors.
#include "grpc/health/v1/health.grpc.pb.h"
#include "shadowrelay/v1/ciphers.grpc.pb.h"
#include "shadowrelay/v1/server.grpc.pb.h"
#include "shadowrelay/v1/users.grpc.pb.h"

namespace {

const char* codeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "OTHER";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: grpc_call ADDRESS TOKEN|- package.Service/Method JSON\n");
    return 2;
  }
  // Use one message of each generated file so the linker keeps their descriptors.
  (void)shadowrelay::v1::User::descriptor();
  (void)shadowrelay::v1::Cipher::descriptor();
  (void)shadowrelay::v1::GetStatusRequest::descriptor();
  (void)grpc::health::v1::HealthCheckRequest::descriptor();

  const std::string address = argv[1];
  const std::string token = argv[2];
  const std::string full = argv[3];
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* method = pool->FindMethodByName(absl::StrReplaceAll(full, {{"/", "."}}));
  if (method == nullptr) {
    std::fprintf(stderr, "grpc_call: unknown method %s\n", full.c_str());
    return 2;
  }
  google::protobuf::DynamicMessageFactory factory(pool);
  std::unique_ptr<google::protobuf::Message> request(
      factory.GetPrototype(method->input_type())->New());
  std::unique_ptr<google::protobuf::Message> response(
      factory.GetPrototype(method->output_type())->New());
  if (auto s = google::protobuf::util::JsonStringToMessage(argv[4], request.get()); !s.ok()) {
    std::fprintf(stderr, "grpc_call: request: %s\n", s.ToString().c_str());
    return 2;
  }
  std::string wire;
  request->SerializeToString(&wire);
  grpc::Slice slice(wire);
  grpc::ByteBuffer send(&slice, 1);

  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (token != "-") context.AddMetadata("authorization", "Bearer " + token);
  grpc::CompletionQueue cq;
  grpc::ByteBuffer received;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(&context, "/" + full, send, &cq);
  call->StartCall();
  call->Finish(&received, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  if (!status.ok()) {
    std::printf("ERROR %s: %s\n", codeName(status.error_code()), status.error_message().c_str());
    return 3;
  }
  std::vector<grpc::Slice> slices;
  (void)received.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  response->ParseFromString(bytes);
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(*response, &json, options);
  std::printf("%s\n", json.c_str());
  return 0;
}
