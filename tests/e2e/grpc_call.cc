// SPDX-License-Identifier: Apache-2.0
// A small grpcurl for the end-to-end tests (grpcurl is not packaged in Debian): calls one unary
// method of the control API with a JSON request and prints the JSON response.
//
//   grpc_call ADDRESS TOKEN shadowrelay.v1.UserService/CreateUser '{"name": "alice"}'
//   grpc_call --tls-ca ca.pem [--tls-cert client.pem --tls-key client.key]
//             [--tls-server-name NAME] ADDRESS TOKEN package.Service/Method JSON
//
//   grpc_call [--tls-* ...] ADDRESS TOKEN --stdin
//
// With --stdin, every line read is one call, "package.Service/Method JSON", over one channel,
// and every call prints one line as it ends (flushed): the response JSON or "ERROR <code name>:
// <message>"; exit 0 at the end of input. The cluster e2e test and bench drive it that way: a
// call then costs a round trip, not a process start (polling every 5 ms).
//
// TOKEN "-" sends no authorization header. Without a --tls-* option the channel is plaintext;
// with any of them it is TLS: --tls-ca verifies the server (default: the system roots),
// --tls-cert/--tls-key present a client certificate (mutual TLS), --tls-server-name is the name
// checked against the server's certificate (default: the host of ADDRESS). The request and
// response types come from the descriptors linked into this binary; messages are converted with
// protobuf's JSON mapping, as grpcurl does. Exit 0 on OK; otherwise prints
// "ERROR <code name>: <message>" and exits 3 (2 for a usage error).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

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
#include "tests/e2e/status_name.h"

namespace {

constexpr const char* kUsage =
    "usage: grpc_call [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]\n"
    "                 ADDRESS TOKEN|- package.Service/Method JSON\n"
    "       grpc_call [--tls-* ...] ADDRESS TOKEN|- --stdin   (lines: Service/Method JSON)\n";

struct TlsOptions {
  bool enabled = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string server_name;
};

bool readFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

/// The channel's credentials: plaintext, or TLS from `tls`. nullptr (message printed) when a
/// file cannot be read.
std::shared_ptr<grpc::ChannelCredentials> channelCredentials(const TlsOptions& tls) {
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  const struct {
    const std::string& path;
    std::string* into;
  } files[] = {{tls.ca_file, &ssl.pem_root_certs},
               {tls.cert_file, &ssl.pem_cert_chain},
               {tls.key_file, &ssl.pem_private_key}};
  for (const auto& file : files) {
    if (!file.path.empty() && !readFile(file.path, file.into)) {
      std::fprintf(stderr, "grpc_call: cannot read %s\n", file.path.c_str());
      return nullptr;
    }
  }
  return grpc::SslCredentials(ssl);
}

/// One unary call of `full` ("package.Service/Method") with the JSON request `json` on
/// `channel`; prints the response JSON or "ERROR <code>: <message>" on one line. Returns 0 on
/// OK, 3 on a gRPC error, 2 when the method or the request is not valid.
int callOnce(const std::shared_ptr<grpc::Channel>& channel, const std::string& token,
             const std::string& full, const std::string& json) {
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
  if (auto s = google::protobuf::util::JsonStringToMessage(json, request.get()); !s.ok()) {
    std::fprintf(stderr, "grpc_call: request: %s\n", s.ToString().c_str());
    return 2;
  }
  std::string wire;
  request->SerializeToString(&wire);
  grpc::Slice slice(wire);
  grpc::ByteBuffer send(&slice, 1);

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
    std::printf("ERROR %s: %s\n", shadowrelay::testing::statusCodeName(status.error_code()),
                status.error_message().c_str());
    std::fflush(stdout);
    return 3;
  }
  std::vector<grpc::Slice> slices;
  (void)received.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  response->ParseFromString(bytes);
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(*response, &out, options);
  std::printf("%s\n", out.c_str());
  std::fflush(stdout);
  return 0;
}

/// --stdin: one call per input line ("package.Service/Method JSON") on one channel. A line that
/// is not a valid call prints "ERROR INVALID_LINE: ..." and the loop goes on.
int callLines(const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos ||
        callOnce(channel, token, line.substr(0, space), line.substr(space + 1)) == 2) {
      std::printf("ERROR INVALID_LINE: not \"package.Service/Method JSON\"\n");
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Leading options, then exactly the four positional arguments.
  TlsOptions tls;
  int first = 1;
  while (first < argc && std::strncmp(argv[first], "--tls-", 6) == 0) {
    const std::string flag = argv[first];
    if (first + 1 >= argc) {
      std::fprintf(stderr, "grpc_call: %s needs a value\n%s", flag.c_str(), kUsage);
      return 2;
    }
    const std::string value = argv[first + 1];
    if (flag == "--tls-ca") {
      tls.ca_file = value;
    } else if (flag == "--tls-cert") {
      tls.cert_file = value;
    } else if (flag == "--tls-key") {
      tls.key_file = value;
    } else if (flag == "--tls-server-name") {
      tls.server_name = value;
    } else {
      std::fprintf(stderr, "grpc_call: unknown option %s\n%s", flag.c_str(), kUsage);
      return 2;
    }
    tls.enabled = true;
    first += 2;
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    std::fprintf(stderr, "grpc_call: --tls-cert and --tls-key go together\n%s", kUsage);
    return 2;
  }
  const bool lines = argc - first == 3 && std::strcmp(argv[argc - 1], "--stdin") == 0;
  if (argc - first != 4 && !lines) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  argv += first - 1;  // argv[1..]: the positional arguments, as without options
  // Use one message of each generated file so the linker keeps their descriptors.
  (void)shadowrelay::v1::User::descriptor();
  (void)shadowrelay::v1::Cipher::descriptor();
  (void)shadowrelay::v1::GetStatusRequest::descriptor();
  (void)grpc::health::v1::HealthCheckRequest::descriptor();

  const std::string address = argv[1];
  const std::string token = argv[2];
  std::shared_ptr<grpc::ChannelCredentials> credentials = channelCredentials(tls);
  if (credentials == nullptr) return 2;
  grpc::ChannelArguments channel_args;
  if (!tls.server_name.empty()) channel_args.SetSslTargetNameOverride(tls.server_name);
  auto channel = grpc::CreateCustomChannel(address, credentials, channel_args);
  if (lines) return callLines(channel, token);
  return callOnce(channel, token, argv[3], argv[4]);
}
