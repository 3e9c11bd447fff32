// SPDX-License-Identifier: Apache-2.0
// Server reflection as grpcurl uses it (`grpcurl list`, `grpcurl describe`), against a running
// server: lists the services through grpc.reflection.v1alpha.ServerReflection, fetches
// file_containing_symbol for each, then every dependency of every file by name
// (file_by_filename), builds a fresh DescriptorPool from the served files alone and resolves
// each service and its methods' types in it. Prints one JSON object of what it found:
//
//   reflection_call ADDRESS TOKEN|-
//   {"services": [...], "symbol_files": {service: file}, "by_name": [file, ...],
//    "dependencies": {file: [file, ...]},
//    "resolved": {service: [{"name", "input", "output", "client_streaming",
//                            "server_streaming"}, ...]},
//    "compiled": {service: [...]}, "errors": [...]}
//
// "compiled" describes the same services from the descriptors linked into this binary (the
// protos the server was built from), to compare with.
// The test judges the output; a failed call prints "ERROR <code name>: <message>", exit 3.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
// Linked for their descriptors ("compiled").
#include "grpc/health/v1/health.grpc.pb.h"
#include "shadowrelay/v1/ciphers.grpc.pb.h"
#include "shadowrelay/v1/server.grpc.pb.h"
#include "shadowrelay/v1/users.grpc.pb.h"
#include "tests/e2e/status_name.h"
#include "tests/api/control/reflection_client.h"

namespace {

namespace pb = ::google::protobuf;
using json = nlohmann::json;
using shadowrelay::testing::ReflectionClient;

// Dependency rounds and files: far above the handful the API has, so a server that keeps
// naming new files cannot keep this client going.
constexpr int kMaxRounds = 16;
constexpr size_t kMaxFiles = 200;

class Collector : public pb::DescriptorPool::ErrorCollector {
 public:
  explicit Collector(std::vector<std::string>* errors) : errors_(errors) {}
  void AddError(const std::string& filename, const std::string& element_name,
                const pb::Message* /*descriptor*/, ErrorLocation /*location*/,
                const std::string& message) override {
    errors_->push_back("building " + filename + " (" + element_name + "): " + message);
  }

 private:
  std::vector<std::string>* errors_;
};

/// One stream carrying `requests`; exits the process with "ERROR ..." on a failed call.
std::vector<std::unique_ptr<pb::Message>> exchange(ReflectionClient& client,
                                                   const std::vector<std::string>& requests,
                                                   std::vector<std::string>* errors) {
  std::vector<std::unique_ptr<pb::Message>> responses;
  grpc::Status status = client.exchange(requests, &responses);
  if (!status.ok()) {
    std::printf("ERROR %s: %s\n", shadowrelay::testing::statusCodeName(status.error_code()), status.error_message().c_str());
    std::exit(3);
  }
  if (responses.size() != requests.size()) {
    errors->push_back("asked " + std::to_string(requests.size()) + " questions on a stream, got " +
                      std::to_string(responses.size()) + " answers");
  }
  return responses;
}

const pb::FileDescriptorProto* named(const std::vector<pb::FileDescriptorProto>& files,
                                     const std::string& name) {
  for (const auto& f : files) {
    if (f.name() == name) return &f;
  }
  return nullptr;
}

/// The file of `files` that declares service `full_name` (package.Service).
const pb::FileDescriptorProto* declaring(const std::vector<pb::FileDescriptorProto>& files,
                                         const std::string& full_name) {
  for (const auto& f : files) {
    for (const auto& s : f.service()) {
      const std::string name = f.package().empty() ? s.name() : f.package() + "." + s.name();
      if (name == full_name) return &f;
    }
  }
  return nullptr;
}

json methodsJson(const pb::ServiceDescriptor& service) {
  json methods = json::array();
  for (int i = 0; i < service.method_count(); ++i) {
    const pb::MethodDescriptor* m = service.method(i);
    methods.push_back({{"name", m->name()},
                       {"input", m->input_type()->full_name()},
                       {"output", m->output_type()->full_name()},
                       {"client_streaming", m->client_streaming()},
                       {"server_streaming", m->server_streaming()}});
  }
  return methods;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: reflection_call ADDRESS TOKEN|-\n");
    return 2;
  }
  // Keep the generated files linked: their services are what "compiled" reports.
  (void)shadowrelay::v1::User::descriptor();
  (void)shadowrelay::v1::Cipher::descriptor();
  (void)shadowrelay::v1::GetStatusRequest::descriptor();
  (void)grpc::health::v1::HealthCheckRequest::descriptor();

  const std::string token = argv[2];
  ReflectionClient client(grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials()),
                          token == "-" ? "" : token);
  std::vector<std::string> errors;
  json out;

  // grpcurl list
  auto listed = exchange(client, {R"(list_services: "")"}, &errors);
  std::vector<std::string> services;
  if (!listed.empty()) services = ReflectionClient::services(*listed[0]);
  out["services"] = services;

  // grpcurl describe: the file of each symbol, then its dependencies by name, round by round.
  std::map<std::string, pb::FileDescriptorProto> files;
  std::vector<std::string> requests;
  for (const std::string& service : services) {
    requests.push_back("file_containing_symbol: \"" + service + "\"");
  }
  auto answers = exchange(client, requests, &errors);
  json symbol_files = json::object();
  for (size_t i = 0; i < answers.size() && i < services.size(); ++i) {
    if (int code = ReflectionClient::errorCode(*answers[i]); code != 0) {
      errors.push_back(services[i] + ": error_code " + std::to_string(code));
      continue;
    }
    const auto served = ReflectionClient::files(*answers[i]);
    const pb::FileDescriptorProto* file = declaring(served, services[i]);
    if (file == nullptr) {
      errors.push_back(services[i] + ": no served file declares it");
      continue;
    }
    symbol_files[services[i]] = file->name();
    files.emplace(file->name(), *file);
  }
  out["symbol_files"] = symbol_files;

  std::set<std::string> by_name;  // asked for by name (answered or not)
  std::vector<std::string> by_name_ok;
  for (int round = 0; round < kMaxRounds; ++round) {
    std::vector<std::string> wanted;
    for (const auto& [name, file] : files) {
      for (const std::string& dep : file.dependency()) {
        if (!by_name.contains(dep) &&
            std::find(wanted.begin(), wanted.end(), dep) == wanted.end()) {
          wanted.push_back(dep);
        }
      }
    }
    if (wanted.empty()) break;
    if (by_name.size() + wanted.size() > kMaxFiles) {
      errors.push_back("more than " + std::to_string(kMaxFiles) + " dependency files");
      break;
    }
    requests.clear();
    for (const std::string& dep : wanted) {
      requests.push_back("file_by_filename: \"" + dep + "\"");
      by_name.insert(dep);
    }
    auto deps = exchange(client, requests, &errors);
    for (size_t i = 0; i < deps.size() && i < wanted.size(); ++i) {
      if (int code = ReflectionClient::errorCode(*deps[i]); code != 0) {
        errors.push_back(wanted[i] + " by name: error_code " + std::to_string(code));
        continue;
      }
      const auto served = ReflectionClient::files(*deps[i]);
      const pb::FileDescriptorProto* file = named(served, wanted[i]);
      if (file == nullptr) {
        errors.push_back(wanted[i] + " by name: not in the answer");
        continue;
      }
      files[wanted[i]] = *file;  // the by-name answer is the one that counts
      by_name_ok.push_back(wanted[i]);
    }
    if (round == kMaxRounds - 1) errors.push_back("dependencies still open after the last round");
  }
  out["by_name"] = by_name_ok;
  json dependencies = json::object();
  for (const auto& [name, file] : files) {
    dependencies[name] = std::vector<std::string>(file.dependency().begin(),
                                                  file.dependency().end());
  }
  out["dependencies"] = dependencies;

  // A pool of the served files alone (no generated pool underneath): every type must resolve.
  pb::DescriptorPool pool;
  Collector collector(&errors);
  std::set<std::string> visiting;
  std::function<bool(const std::string&)> build = [&](const std::string& name) {
    if (pool.FindFileByName(name) != nullptr) return true;
    auto it = files.find(name);
    if (it == files.end()) {
      errors.push_back(name + ": needed but not resolved");
      return false;
    }
    if (!visiting.insert(name).second) {
      errors.push_back(name + ": import cycle");
      return false;
    }
    bool deps_ok = true;
    for (const std::string& dep : it->second.dependency()) deps_ok = build(dep) && deps_ok;
    visiting.erase(name);
    return deps_ok && pool.BuildFileCollectingErrors(it->second, &collector) != nullptr;
  };
  json resolved = json::object();
  json compiled = json::object();
  for (const std::string& service : services) {
    if (const pb::ServiceDescriptor* linked =
            pb::DescriptorPool::generated_pool()->FindServiceByName(service)) {
      compiled[service] = methodsJson(*linked);
    }
    if (!symbol_files.contains(service) || !build(symbol_files[service].get<std::string>())) {
      continue;
    }
    const pb::ServiceDescriptor* found = pool.FindServiceByName(service);
    if (found == nullptr) {
      errors.push_back(service + ": not in the pool built from its file");
      continue;
    }
    resolved[service] = methodsJson(*found);
  }
  out["resolved"] = resolved;
  out["compiled"] = compiled;
  out["errors"] = errors;
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
