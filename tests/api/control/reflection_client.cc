// SPDX-License-Identifier: Apache-2.0
#include "tests/api/control/reflection_client.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>
#include <grpcpp/generic/generic_stub.h>

#include <chrono>

namespace shadowrelay::testing {
namespace {

namespace pb = ::google::protobuf;

constexpr char kMethod[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

const pb::Message* prototype(const char* type) {
  const pb::Descriptor* d = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
  return d == nullptr ? nullptr : pb::MessageFactory::generated_factory()->GetPrototype(d);
}

const pb::Message* subMessage(const pb::Message& m, const char* field) {
  const pb::FieldDescriptor* f = m.GetDescriptor()->FindFieldByName(field);
  if (f == nullptr || !m.GetReflection()->HasField(m, f)) {
    return nullptr;
  }
  return &m.GetReflection()->GetMessage(m, f);
}

grpc::ByteBuffer toBuffer(const pb::Message& m) {
  grpc::Slice slice(m.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

bool fromBuffer(const grpc::ByteBuffer& buffer, pb::Message* m) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) {
    return false;
  }
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return m->ParseFromString(bytes);
}

}  // namespace

ReflectionClient::ReflectionClient(std::shared_ptr<grpc::Channel> channel, std::string token)
    : channel_(std::move(channel)), token_(std::move(token)) {}

grpc::Status ReflectionClient::exchange(const std::vector<std::string>& requests,
                                        std::vector<std::unique_ptr<pb::Message>>* responses) {
  const pb::Message* request_type = prototype("grpc.reflection.v1alpha.ServerReflectionRequest");
  const pb::Message* response_type = prototype("grpc.reflection.v1alpha.ServerReflectionResponse");
  if (request_type == nullptr || response_type == nullptr) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "reflection types are not in the pool");
  }
  grpc::GenericStub stub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token_.empty()) {
    context.AddMetadata("authorization", "Bearer " + token_);
  }
  grpc::CompletionQueue cq;
  auto wait = [&cq](intptr_t expected) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok) || reinterpret_cast<intptr_t>(tag) != expected) {
      return false;
    }
    return ok;
  };
  auto call = stub.PrepareCall(&context, kMethod, &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  bool alive = wait(1);
  for (const std::string& text : requests) {
    if (!alive) {
      break;
    }
    std::unique_ptr<pb::Message> request(request_type->New());
    if (!pb::TextFormat::ParseFromString(text, request.get())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad request text: " + text);
    }
    call->Write(toBuffer(*request), reinterpret_cast<void*>(2));
    if (!(alive = wait(2))) {
      break;
    }
    grpc::ByteBuffer buffer;
    call->Read(&buffer, reinterpret_cast<void*>(3));
    if (!(alive = wait(3))) {
      break;
    }
    std::unique_ptr<pb::Message> response(response_type->New());
    if (!fromBuffer(buffer, response.get())) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "unparseable response");
    }
    responses->push_back(std::move(response));
  }
  if (alive) {
    call->WritesDone(reinterpret_cast<void*>(4));
    wait(4);
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  wait(5);
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

std::vector<std::string> ReflectionClient::services(const pb::Message& response) {
  std::vector<std::string> names;
  const pb::Message* list = subMessage(response, "list_services_response");
  if (list == nullptr) {
    return names;
  }
  const pb::FieldDescriptor* service = list->GetDescriptor()->FindFieldByName("service");
  for (int i = 0; i < list->GetReflection()->FieldSize(*list, service); ++i) {
    const pb::Message& s = list->GetReflection()->GetRepeatedMessage(*list, service, i);
    names.push_back(s.GetReflection()->GetString(s, s.GetDescriptor()->FindFieldByName("name")));
  }
  return names;
}

std::vector<pb::FileDescriptorProto> ReflectionClient::files(const pb::Message& response) {
  std::vector<pb::FileDescriptorProto> out;
  const pb::Message* fd = subMessage(response, "file_descriptor_response");
  if (fd == nullptr) {
    return out;
  }
  const pb::FieldDescriptor* protos = fd->GetDescriptor()->FindFieldByName("file_descriptor_proto");
  for (int i = 0; i < fd->GetReflection()->FieldSize(*fd, protos); ++i) {
    pb::FileDescriptorProto file;
    if (file.ParseFromString(fd->GetReflection()->GetRepeatedString(*fd, protos, i))) {
      out.push_back(std::move(file));
    }
  }
  return out;
}

int ReflectionClient::errorCode(const pb::Message& response) {
  const pb::Message* error = subMessage(response, "error_response");
  if (error == nullptr) {
    return 0;
  }
  return error->GetReflection()->GetInt32(*error,
                                          error->GetDescriptor()->FindFieldByName("error_code"));
}

}  // namespace shadowrelay::testing
