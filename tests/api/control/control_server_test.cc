// SPDX-License-Identifier: Apache-2.0
// The control API through a real gRPC client against an in-process server on 127.0.0.1:0, with
// the real registry and store on a temporary directory.
#include "api/control/control_server.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "api/control/bearer_auth.h"
#include "api/control/cipher_service.h"
#include "api/control/client_addresses.h"
#include "crypto/providers.h"
#include "gtest/gtest.h"
#include "relay/log.h"
#include "relay/ss_uri.h"
#include "shadowrelay/v1/ciphers.grpc.pb.h"
#include "shadowrelay/v1/server.grpc.pb.h"
#include "shadowrelay/v1/users.grpc.pb.h"
#include "tests/api/control/reflection_client.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/tls_certs.h"

namespace shadowrelay::api::control {
namespace {

namespace v1 = ::shadowrelay::v1;
using grpc::StatusCode;
using shadowrelay::testing::ReflectionClient;
using shadowrelay::testing::TempDir;

constexpr char kToken[] = "s3cr3t-t0ken-for-tests";
constexpr char kPublicHost[] = "203.0.113.7";

users::User configured(const std::string& name, uint16_t port, users::UserSource source) {
  users::User u;
  u.name = name;
  u.method = "chacha20-ietf-poly1305";
  u.password = "configured-" + name;
  u.port = port;
  u.source = source;
  return u;
}

RelayStatus sampleStatus() {
  RelayStatus s;
  s.version = "1.2.3-test";
  s.uptime = absl::Milliseconds(90500);
  s.workers = 2;
  s.listeners = {
      {"0.0.0.0", 8388, "tcp", ""}, {"0.0.0.0", 8388, "udp", ""}, {"0.0.0.0", 9100, "tcp", "cfg"}};
  s.active_tcp_sessions = 7;
  s.udp_associations = 3;
  return s;
}

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto providers = crypto::CryptoProviders::create(crypto::ProviderChoice::OpenSsl);
    ASSERT_TRUE(providers.ok()) << providers.status();
    providers_ = *std::move(providers);
    users::RegistryOptions ro;
    ro.state_dir = dir_.path();
    ro.default_method = "chacha20-ietf-poly1305";
    ro.shared_port = 8388;
    ro.configured_users = {configured("default", 0, users::UserSource::Default),
                           configured("cfg", 9100, users::UserSource::Config)};
    auto registry = users::UserRegistry::open(ro);
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);

    ControlServerOptions co;
    co.listen = "127.0.0.1:0";
    co.token = kToken;
    co.public_host = kPublicHost;
    co.providers = providers_.get();
    co.status = [] { return sampleStatus(); };
    auto server = ControlServer::start(co, *registry_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    EXPECT_EQ(server_->address(), absl::StrCat("127.0.0.1:", server_->port()));

    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    users_ = v1::UserService::NewStub(channel_);
    ciphers_ = v1::CipherService::NewStub(channel_);
    status_ = v1::ServerService::NewStub(channel_);
  }

  void TearDown() override {
    server_.reset();
    registry_.reset();
  }

  /// A context with "authorization: <value>" ("" sends no header).
  static std::unique_ptr<grpc::ClientContext> ctx(
      const std::string& authorization = absl::StrCat("Bearer ", kToken)) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!authorization.empty()) {
      c->AddMetadata("authorization", authorization);
    }
    return c;
  }

  grpc::Status create(const std::string& name, const std::string& method, uint32_t port,
                      v1::User* out, const std::string& password = "") {
    v1::CreateUserRequest req;
    req.set_name(name);
    req.set_method(method);
    req.set_port(port);
    req.set_password(password);
    return users_->CreateUser(ctx().get(), req, out);
  }

  grpc::Status get(const std::string& name, v1::User* out) {
    v1::GetUserRequest req;
    req.set_name(name);
    return users_->GetUser(ctx().get(), req, out);
  }

  grpc::Status update(const v1::User& user, std::vector<std::string> paths, v1::User* out) {
    v1::UpdateUserRequest req;
    *req.mutable_user() = user;
    for (const std::string& p : paths) {
      req.mutable_update_mask()->add_paths(p);
    }
    return users_->UpdateUser(ctx().get(), req, out);
  }

  grpc::Status remove(const std::string& name) {
    v1::DeleteUserRequest req;
    req.set_name(name);
    v1::DeleteUserResponse resp;
    return users_->DeleteUser(ctx().get(), req, &resp);
  }

  TempDir dir_;
  std::unique_ptr<crypto::CryptoProviders> providers_;
  std::unique_ptr<users::UserRegistry> registry_;
  std::unique_ptr<ControlServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::UserService::Stub> users_;
  std::unique_ptr<v1::CipherService::Stub> ciphers_;
  std::unique_ptr<v1::ServerService::Stub> status_;
};

// ss://base64url(method:password)@host:port#name
void expectAccessUrl(const v1::User& u) {
  const std::string prefix = "ss://";
  ASSERT_TRUE(absl::StartsWith(u.access_url(), prefix)) << u.access_url();
  const size_t at = u.access_url().find('@');
  ASSERT_NE(at, std::string::npos);
  std::string userinfo;
  ASSERT_TRUE(absl::WebSafeBase64Unescape(u.access_url().substr(prefix.size(), at - prefix.size()),
                                          &userinfo));
  EXPECT_EQ(userinfo, u.method() + ":" + u.password());
  EXPECT_EQ(u.access_url().substr(at + 1), absl::StrCat(kPublicHost, ":", u.port(), "#", u.name()));
}

TEST_F(ControlServerTest, UserLifecycle) {
  v1::User alice;
  ASSERT_TRUE(create("alice", "aes-256-gcm", 0, &alice).ok());
  EXPECT_EQ(alice.name(), "alice");
  EXPECT_EQ(alice.method(), "aes-256-gcm");
  EXPECT_EQ(alice.port(), 8388u);  // the shared port
  EXPECT_FALSE(alice.dedicated_port());
  EXPECT_TRUE(alice.enabled());
  EXPECT_EQ(alice.source(), v1::USER_SOURCE_API);
  std::string raw;
  ASSERT_TRUE(absl::Base64Unescape(alice.password(), &raw));
  EXPECT_EQ(raw.size(), 32u);  // generated: the method's key size
  expectAccessUrl(alice);
  EXPECT_GT(alice.create_time().seconds(), 1600000000);

  v1::User bob;
  ASSERT_TRUE(create("bob", "", 9200, &bob, "bobs password").ok());
  EXPECT_EQ(bob.method(), "chacha20-ietf-poly1305");  // the default method
  EXPECT_EQ(bob.password(), "bobs password");
  EXPECT_EQ(bob.port(), 9200u);
  EXPECT_TRUE(bob.dedicated_port());
  expectAccessUrl(bob);

  v1::User got;
  ASSERT_TRUE(get("alice", &got).ok());
  EXPECT_EQ(got.password(), alice.password());
  EXPECT_EQ(got.access_url(), alice.access_url());
  EXPECT_EQ(got.create_time().seconds(), alice.create_time().seconds());

  v1::ListUsersResponse list;
  ASSERT_TRUE(users_->ListUsers(ctx().get(), v1::ListUsersRequest(), &list).ok());
  ASSERT_EQ(list.users_size(), 4);
  std::vector<std::string> names;
  for (const v1::User& u : list.users()) {
    names.push_back(u.name());
    EXPECT_TRUE(u.password().empty()) << u.name();
    EXPECT_TRUE(u.key().empty()) << u.name();
    EXPECT_TRUE(u.access_url().empty()) << u.name();
    EXPECT_FALSE(u.method().empty());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"alice", "bob", "cfg", "default"}));
  EXPECT_EQ(list.users(2).source(), v1::USER_SOURCE_CONFIG);
  EXPECT_EQ(list.users(3).source(), v1::USER_SOURCE_DEFAULT);

  // Rotate the password (empty: generated), change method, disable, set limits.
  v1::User change;
  change.set_name("alice");
  change.set_method("aes-128-gcm");
  change.set_enabled(false);
  change.mutable_limits()->set_max_connections(5);
  change.mutable_limits()->set_data_quota_bytes(123456);
  v1::User updated;
  ASSERT_TRUE(update(change, {"method", "password", "enabled", "limits"}, &updated).ok());
  EXPECT_EQ(updated.method(), "aes-128-gcm");
  EXPECT_NE(updated.password(), alice.password());
  ASSERT_TRUE(absl::Base64Unescape(updated.password(), &raw));
  EXPECT_EQ(raw.size(), 16u);
  EXPECT_FALSE(updated.enabled());
  EXPECT_EQ(updated.limits().max_connections(), 5u);
  EXPECT_EQ(updated.limits().data_quota_bytes(), 123456u);
  expectAccessUrl(updated);

  // Only the named sub-field changes.
  v1::User quota_only;
  quota_only.set_name("alice");
  quota_only.mutable_limits()->set_data_quota_bytes(999);
  quota_only.mutable_limits()->set_max_connections(77);  // not in the mask
  ASSERT_TRUE(update(quota_only, {"limits.data_quota_bytes"}, &updated).ok());
  EXPECT_EQ(updated.limits().data_quota_bytes(), 999u);
  EXPECT_EQ(updated.limits().max_connections(), 5u);

  // bytes_per_second (issue 18 §3): by its own path, and by "limits" as a whole.
  v1::User rate_only;
  rate_only.set_name("alice");
  rate_only.mutable_limits()->set_bytes_per_second(1 << 20);
  rate_only.mutable_limits()->set_data_quota_bytes(1);  // not in the mask
  ASSERT_TRUE(update(rate_only, {"limits.bytes_per_second"}, &updated).ok());
  EXPECT_EQ(updated.limits().bytes_per_second(), 1u << 20);
  EXPECT_EQ(updated.limits().data_quota_bytes(), 999u);
  EXPECT_EQ(registry_->snapshot()->find("alice")->bytes_per_second, 1u << 20);
  ASSERT_TRUE(update(quota_only, {"limits"}, &updated).ok());
  EXPECT_EQ(updated.limits().bytes_per_second(), 0u);  // "limits" sets every limit

  // Traffic reported by the relay shows up.
  registry_->addTraffic("bob", {10, 20, 1, 2});
  ASSERT_TRUE(get("bob", &got).ok());
  EXPECT_EQ(got.traffic().bytes_up(), 10u);
  EXPECT_EQ(got.traffic().bytes_down(), 20u);
  EXPECT_EQ(got.traffic().tcp_connections(), 1u);
  EXPECT_EQ(got.traffic().udp_packets(), 2u);

  ASSERT_TRUE(remove("alice").ok());
  EXPECT_EQ(get("alice", &got).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(registry_->snapshot()->find("alice"), nullptr);
  EXPECT_NE(registry_->snapshot()->find("bob"), nullptr);
}

// The JSON bodies of api/README.md's grpcurl examples, through protobuf's JSON mapping.
TEST_F(ControlServerTest, GrpcurlStyleJsonRequests) {
  v1::CreateUserRequest create_req;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  R"({"name":"alice","method":"aes-256-gcm"})", &create_req)
                  .ok());
  v1::User alice;
  ASSERT_TRUE(users_->CreateUser(ctx().get(), create_req, &alice).ok());
  EXPECT_EQ(alice.method(), "aes-256-gcm");
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  R"({"name":"bob","password":"pw","port":9000,
                      "limits":{"max_connections":10,"data_quota_bytes":10737418240}})",
                  &create_req)
                  .ok());
  v1::User bob;
  ASSERT_TRUE(users_->CreateUser(ctx().get(), create_req, &bob).ok());
  EXPECT_EQ(bob.limits().data_quota_bytes(), 10737418240u);
  EXPECT_EQ(bob.port(), 9000u);

  v1::UpdateUserRequest update_req;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(
          R"({"user":{"name":"alice","limits":{"max_connections":5}},"update_mask":"limits.maxConnections"})",
          &update_req)
          .ok());
  v1::User updated;
  grpc::Status s = users_->UpdateUser(ctx().get(), update_req, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(updated.limits().max_connections(), 5u);
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(
          R"({"user":{"name":"alice","limits":{"bytes_per_second":1048576}},"update_mask":"limits.bytesPerSecond"})",
          &update_req)
          .ok());
  s = users_->UpdateUser(ctx().get(), update_req, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(updated.limits().bytes_per_second(), 1048576u);
  EXPECT_EQ(updated.limits().max_connections(), 5u);
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(
          R"({"user":{"name":"alice","enabled":false},"update_mask":"enabled"})", &update_req)
          .ok());
  ASSERT_TRUE(users_->UpdateUser(ctx().get(), update_req, &updated).ok());
  EXPECT_FALSE(updated.enabled());

  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(updated, &json).ok());
  EXPECT_TRUE(absl::StrContains(json, "\"accessUrl\":\"ss://")) << json;
}

// max_devices through CreateUser, the limits.maxDevices mask and the store; User.devices from
// the snapshot's tracker, addresses as keyed hashes (the server runs without
// --show-client-addresses).
TEST_F(ControlServerTest, MaxDevicesAndTheUsersDevices) {
  v1::CreateUserRequest create_req;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                  R"({"name":"dave","method":"aes-256-gcm","limits":{"max_devices":2}})",
                  &create_req)
                  .ok());
  v1::User dave;
  ASSERT_TRUE(users_->CreateUser(ctx().get(), create_req, &dave).ok());
  EXPECT_EQ(dave.limits().max_devices(), 2u);
  EXPECT_EQ(dave.devices().count(), 0u);
  EXPECT_EQ(registry_->snapshot()->find("dave")->max_devices, 2u);
  EXPECT_EQ(registry_->snapshot()->find("dave")->device_window, std::chrono::seconds(600));

  v1::UpdateUserRequest update_req;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(
          R"({"user":{"name":"dave","limits":{"max_devices":3,"max_connections":9}},"update_mask":"limits.maxDevices"})",
          &update_req)
          .ok());
  v1::User updated;
  grpc::Status s = users_->UpdateUser(ctx().get(), update_req, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(updated.limits().max_devices(), 3u);
  EXPECT_EQ(updated.limits().max_connections(), 0u);  // not in the mask
  EXPECT_EQ(registry_->snapshot()->find("dave")->max_devices, 3u);

  // Two devices as the workers count them; one of them ended.
  const relay::RelayUser* live = registry_->snapshot()->find("dave");
  const std::string first("\x7f\x00\x00\x02", 4), second("\x7f\x00\x00\x03", 4);
  std::optional<relay::DeviceLease> a = live->admitDevice(first);
  ASSERT_TRUE(a.has_value());
  std::optional<relay::DeviceLease> b = live->admitDevice(second);
  ASSERT_TRUE(b.has_value());
  b.reset();
  v1::User got;
  ASSERT_TRUE(get("dave", &got).ok());
  ASSERT_EQ(got.devices().count(), 2u);
  ASSERT_EQ(got.devices().list_size(), 2);
  EXPECT_TRUE(got.devices().list(0).active());
  EXPECT_FALSE(got.devices().list(1).active());
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  for (const v1::Device& device : got.devices().list()) {
    EXPECT_EQ(device.address().size(), ClientAddresses::kHashHexDigits) << device.address();
    EXPECT_EQ(device.address().find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_NE(device.address(), "127.0.0.2");
    EXPECT_LE(std::abs(device.last_seen().seconds() - now), 5);
  }
  EXPECT_NE(got.devices().list(0).address(), got.devices().list(1).address());
  // The same device keeps its hash; ListUsers shows the devices too.
  v1::ListUsersResponse list;
  ASSERT_TRUE(users_->ListUsers(ctx().get(), v1::ListUsersRequest(), &list).ok());
  for (const v1::User& u : list.users()) {
    if (u.name() != "dave") continue;
    ASSERT_EQ(u.devices().list_size(), 2);
    EXPECT_EQ(u.devices().list(0).address(), got.devices().list(0).address());
  }

  // The limit is kept in the store: a registry opened on it has it.
  server_.reset();
  registry_.reset();
  users::RegistryOptions ro;
  ro.state_dir = dir_.path();
  ro.shared_port = 8388;
  auto reopened = users::UserRegistry::open(ro);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto stored = (*reopened)->get("dave");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->limits.max_devices, 3u);
}

// --show-client-addresses: the addresses as text.
TEST(ClientAddressesTest, ShownOrHashed) {
  const std::string v4("\xc0\x00\x02\x07", 4);
  const std::string v6("\x20\x01\x0d\xb8\x00\x01\x00\x02", 8);
  const relay::DeviceIdsPtr ids = relay::DeviceIds::random();
  ClientAddresses shown(true);
  EXPECT_EQ(shown.display(v4, *ids), "192.0.2.7");
  EXPECT_EQ(shown.display(v6, *ids), "2001:db8:1:2::/64");
  ClientAddresses hashed(false);
  EXPECT_EQ(hashed.display(v4, *ids).size(), ClientAddresses::kHashHexDigits);
  EXPECT_EQ(hashed.display(v4, *ids), hashed.display(v4, *ids));
  EXPECT_EQ(hashed.display(v4, *ids), ids->id(v4));
  EXPECT_NE(hashed.display(v4, *ids), hashed.display(v6, *ids));
  // Another key (another process): another hash.
  EXPECT_NE(hashed.display(v4, *ids), hashed.display(v4, *relay::DeviceIds::random()));
  // The cluster's key (etcd store): the same hash in every process.
  EXPECT_EQ(hashed.display(v4, *relay::DeviceIds::fromSecret("cluster")),
            hashed.display(v4, *relay::DeviceIds::fromSecret("cluster")));
  EXPECT_NE(hashed.display(v4, *relay::DeviceIds::fromSecret("cluster")),
            hashed.display(v4, *relay::DeviceIds::fromSecret("another cluster")));
}

TEST_F(ControlServerTest, EveryErrorCode) {
  v1::User out;
  ASSERT_TRUE(create("alice", "", 0, &out).ok());

  EXPECT_EQ(create("bad name", "", 0, &out).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create("", "", 0, &out).error_code(), StatusCode::INVALID_ARGUMENT);
  grpc::Status unknown_method = create("carol", "rc2-cfb", 0, &out);
  EXPECT_EQ(unknown_method.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(unknown_method.error_message(), "aes-256-gcm"))
      << unknown_method.error_message();  // names the supported methods
  // A legacy stream method without --allow-insecure-ciphers: refused, naming the flag.
  grpc::Status stream_method = create("carol", "rc4-md5", 0, &out);
  EXPECT_EQ(stream_method.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(stream_method.error_message(), "--allow-insecure-ciphers"))
      << stream_method.error_message();
  EXPECT_EQ(create("carol", "", 70000, &out).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create("alice", "", 0, &out).error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(create("carol", "", 9100, &out).error_code(), StatusCode::FAILED_PRECONDITION);

  EXPECT_EQ(get("nobody", &out).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(remove("nobody").error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(remove("cfg").error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(remove("default").error_code(), StatusCode::FAILED_PRECONDITION);

  v1::User change;
  change.set_name("nobody");
  change.set_enabled(false);
  EXPECT_EQ(update(change, {"enabled"}, &out).error_code(), StatusCode::NOT_FOUND);
  change.set_name("cfg");
  EXPECT_EQ(update(change, {"enabled"}, &out).error_code(), StatusCode::FAILED_PRECONDITION);
  change.set_name("default");
  EXPECT_EQ(update(change, {"enabled"}, &out).error_code(), StatusCode::FAILED_PRECONDITION);
  change.set_name("alice");
  EXPECT_EQ(update(change, {}, &out).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(update(change, {"port"}, &out).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(update(change, {"name"}, &out).error_code(), StatusCode::INVALID_ARGUMENT);
  change.set_method("bogus");
  EXPECT_EQ(update(change, {"method"}, &out).error_code(), StatusCode::INVALID_ARGUMENT);
  v1::User nameless;
  EXPECT_EQ(update(nameless, {"enabled"}, &out).error_code(), StatusCode::INVALID_ARGUMENT);

  v1::SetDefaultsRequest set;
  set.set_method("bogus");
  v1::Defaults defaults;
  EXPECT_EQ(ciphers_->SetDefaults(ctx().get(), set, &defaults).error_code(),
            StatusCode::INVALID_ARGUMENT);
  set.clear_method();
  EXPECT_EQ(ciphers_->SetDefaults(ctx().get(), set, &defaults).error_code(),
            StatusCode::INVALID_ARGUMENT);

  // Nothing above changed anything.
  ASSERT_TRUE(get("alice", &out).ok());
  EXPECT_TRUE(out.enabled());
  EXPECT_EQ(registry_->size(), 3u);
}

// Every RPC, keyed by name, called with the given authorization header value.
std::vector<std::pair<std::string, std::function<grpc::Status(const std::string&)>>> allCalls(
    v1::UserService::Stub* users, v1::CipherService::Stub* ciphers,
    v1::ServerService::Stub* server) {
  auto context = [](const std::string& auth) {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!auth.empty()) {
      c->AddMetadata("authorization", auth);
    }
    return c;
  };
  return {
      {"CreateUser",
       [=](const std::string& a) {
         v1::CreateUserRequest r;
         r.set_name("intruder");
         v1::User u;
         return users->CreateUser(context(a).get(), r, &u);
       }},
      {"GetUser",
       [=](const std::string& a) {
         v1::GetUserRequest r;
         r.set_name("cfg");
         v1::User u;
         return users->GetUser(context(a).get(), r, &u);
       }},
      {"ListUsers",
       [=](const std::string& a) {
         v1::ListUsersResponse u;
         return users->ListUsers(context(a).get(), v1::ListUsersRequest(), &u);
       }},
      {"UpdateUser",
       [=](const std::string& a) {
         v1::UpdateUserRequest r;
         r.mutable_user()->set_name("cfg");
         r.mutable_update_mask()->add_paths("enabled");
         v1::User u;
         return users->UpdateUser(context(a).get(), r, &u);
       }},
      {"DeleteUser",
       [=](const std::string& a) {
         v1::DeleteUserRequest r;
         r.set_name("cfg");
         v1::DeleteUserResponse u;
         return users->DeleteUser(context(a).get(), r, &u);
       }},
      {"ListCiphers",
       [=](const std::string& a) {
         v1::ListCiphersResponse u;
         return ciphers->ListCiphers(context(a).get(), v1::ListCiphersRequest(), &u);
       }},
      {"GetDefaults",
       [=](const std::string& a) {
         v1::Defaults u;
         return ciphers->GetDefaults(context(a).get(), v1::GetDefaultsRequest(), &u);
       }},
      {"SetDefaults",
       [=](const std::string& a) {
         v1::SetDefaultsRequest r;
         r.set_method("aes-128-gcm");
         v1::Defaults u;
         return ciphers->SetDefaults(context(a).get(), r, &u);
       }},
      {"GetStatus",
       [=](const std::string& a) {
         v1::ServerStatus u;
         return server->GetStatus(context(a).get(), v1::GetStatusRequest(), &u);
       }},
  };
}

TEST_F(ControlServerTest, EveryCallButHealthNeedsTheToken) {
  const std::string wrong = "Bearer not-the-token";
  for (auto& [name, call] : allCalls(users_.get(), ciphers_.get(), status_.get())) {
    for (const std::string& auth :
         {std::string(), wrong, std::string("Bearer "), absl::StrCat("Basic ", kToken),
          absl::StrCat("Bearer ", kToken, "x"), absl::StrCat(kToken)}) {
      grpc::Status s = call(auth);
      EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED)
          << name << " with authorization \"" << auth << "\": " << s.error_message();
    }
  }
  // Nothing was changed by the refused calls.
  EXPECT_EQ(registry_->size(), 2u);
  EXPECT_EQ(registry_->defaultMethod(), "chacha20-ietf-poly1305");
  EXPECT_TRUE(registry_->get("cfg")->enabled);

  // The right token works for all of them ("bearer" in any case); the read-only user still
  // answers FAILED_PRECONDITION, which proves the call got through.
  for (auto& [name, call] : allCalls(users_.get(), ciphers_.get(), status_.get())) {
    grpc::Status s = call(absl::StrCat("bearer ", kToken));
    EXPECT_NE(s.error_code(), StatusCode::UNAUTHENTICATED) << name << ": " << s.error_message();
  }
  EXPECT_EQ(registry_->defaultMethod(), "aes-128-gcm");
}

// grpc.health.v1.Health/Check on the wire, without generated stubs (this test deliberately does
// not link the health descriptor itself: reflection below must get it from the control server).
// HealthCheckRequest{} is empty; HealthCheckResponse{status: SERVING} is field 1 = 1: 08 01.
grpc::Status healthCheck(const std::shared_ptr<grpc::Channel>& channel,
                         const std::string& authorization, std::string* response) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!authorization.empty()) {
    c.AddMetadata("authorization", authorization);
  }
  grpc::Slice empty{std::string()};
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer reply;
  absl::Mutex mu;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&c, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &reply,
                 [&](grpc::Status s) {
                   absl::MutexLock lock(&mu);
                   status = std::move(s);
                   done = true;
                 });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  std::vector<grpc::Slice> slices;
  if (status.ok() && reply.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      response->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return status;
}

TEST_F(ControlServerTest, HealthNeedsNoToken) {
  for (const std::string& auth : {std::string(), std::string("Bearer wrong")}) {
    std::string response;
    grpc::Status s = healthCheck(channel_, auth, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(response, std::string("\x08\x01", 2)) << "not SERVING";
  }
}

TEST_F(ControlServerTest, ReflectionListsAndDescribesTheServices) {
  ReflectionClient client(channel_, kToken);
  std::vector<std::unique_ptr<google::protobuf::Message>> responses;
  grpc::Status s = client.exchange(
      {
          R"(list_services: "")",
          R"(file_containing_symbol: "shadowrelay.v1.UserService")",
          R"(file_by_filename: "google/protobuf/field_mask.proto")",
          R"(file_containing_symbol: "grpc.health.v1.Health")",
          R"(file_containing_symbol: "no.such.Service")",
      },
      &responses);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(responses.size(), 5u);

  std::vector<std::string> services = ReflectionClient::services(*responses[0]);
  std::sort(services.begin(), services.end());
  EXPECT_EQ(services, (std::vector<std::string>{
                          "grpc.health.v1.Health",
                          "grpc.reflection.v1alpha.ServerReflection",
                          "shadowrelay.v1.CipherService",
                          "shadowrelay.v1.ServerService",
                          "shadowrelay.v1.UserService",
                      }));

  // A response carries the file and its dependencies. (gRPC 1.51 also repeats the files of
  // earlier responses on the same stream: it never clears its response; clients index by name.)
  auto named = [](const std::vector<google::protobuf::FileDescriptorProto>& files,
                  const std::string& name) -> const google::protobuf::FileDescriptorProto* {
    for (const auto& f : files) {
      if (f.name() == name) {
        return &f;
      }
    }
    return nullptr;
  };
  const auto first = ReflectionClient::files(*responses[1]);
  const google::protobuf::FileDescriptorProto* users = named(first, "shadowrelay/v1/users.proto");
  ASSERT_NE(users, nullptr);
  EXPECT_NE(named(first, "google/protobuf/timestamp.proto"), nullptr);  // a dependency
  EXPECT_EQ(users->package(), "shadowrelay.v1");
  ASSERT_EQ(users->service_size(), 1);
  std::vector<std::string> methods;
  for (const auto& m : users->service(0).method()) {
    methods.push_back(m.name());
  }
  EXPECT_EQ(methods, (std::vector<std::string>{"CreateUser", "GetUser", "ListUsers", "UpdateUser",
                                               "DeleteUser"}));
  bool has_access_url = false;
  for (const auto& message : users->message_type()) {
    if (message.name() == "User") {
      for (const auto& field : message.field()) {
        has_access_url = has_access_url || field.name() == "access_url";
      }
    }
  }
  EXPECT_TRUE(has_access_url);
  EXPECT_NE(std::find(users->dependency().begin(), users->dependency().end(),
                      "google/protobuf/field_mask.proto"),
            users->dependency().end());

  const auto mask = ReflectionClient::files(*responses[2]);
  const google::protobuf::FileDescriptorProto* field_mask =
      named(mask, "google/protobuf/field_mask.proto");
  ASSERT_NE(field_mask, nullptr);
  EXPECT_EQ(field_mask->message_type(0).name(), "FieldMask");

  const auto health = ReflectionClient::files(*responses[3]);
  const google::protobuf::FileDescriptorProto* health_file =
      named(health, "grpc/health/v1/health.proto");
  ASSERT_NE(health_file, nullptr);
  ASSERT_EQ(health_file->service_size(), 1);
  EXPECT_EQ(health_file->service(0).name(), "Health");

  EXPECT_EQ(ReflectionClient::errorCode(*responses[4]), static_cast<int>(StatusCode::NOT_FOUND));
}

TEST_F(ControlServerTest, ReflectionNeedsTheToken) {
  for (const std::string& token : {std::string(), std::string("wrong")}) {
    ReflectionClient client(channel_, token);
    std::vector<std::unique_ptr<google::protobuf::Message>> responses;
    grpc::Status s = client.exchange({R"(list_services: "")"}, &responses);
    EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED) << s.error_message();
    EXPECT_TRUE(responses.empty());
  }
}

TEST_F(ControlServerTest, Ciphers) {
  v1::ListCiphersResponse list;
  ASSERT_TRUE(ciphers_->ListCiphers(ctx().get(), v1::ListCiphersRequest(), &list).ok());
  ASSERT_EQ(list.ciphers_size(), 8);  // 5 AEAD-2017 methods, then 3 Shadowsocks 2022 methods
  std::map<std::string, v1::Cipher> by_name;
  for (const v1::Cipher& c : list.ciphers()) {
    by_name[c.name()] = c;
    EXPECT_TRUE(c.aead());
    EXPECT_EQ(c.tag_size(), 16u);
    EXPECT_EQ(c.salt_size(), c.key_size());
    ASSERT_EQ(c.providers_size(), 1) << c.name();
    EXPECT_EQ(c.providers(0), "openssl");
    EXPECT_EQ(c.selected_provider(), "openssl");
  }
  EXPECT_EQ(by_name["aes-128-gcm"].key_size(), 16u);
  EXPECT_EQ(by_name["aes-192-gcm"].key_size(), 24u);
  EXPECT_EQ(by_name["aes-256-gcm"].key_size(), 32u);
  EXPECT_EQ(by_name["chacha20-ietf-poly1305"].nonce_size(), 12u);
  EXPECT_EQ(by_name["xchacha20-ietf-poly1305"].nonce_size(), 24u);
  EXPECT_TRUE(by_name["aes-256-gcm"].recommended());
  EXPECT_FALSE(by_name["aes-192-gcm"].recommended());
  EXPECT_EQ(by_name["aes-128-gcm"].edition(), v1::EDITION_AEAD_2017);
  EXPECT_EQ(by_name["2022-blake3-aes-128-gcm"].edition(), v1::EDITION_2022);
  EXPECT_EQ(by_name["2022-blake3-aes-128-gcm"].key_size(), 16u);
  EXPECT_EQ(by_name["2022-blake3-aes-256-gcm"].edition(), v1::EDITION_2022);
  EXPECT_EQ(by_name["2022-blake3-chacha20-poly1305"].edition(), v1::EDITION_2022);
  EXPECT_EQ(by_name["2022-blake3-chacha20-poly1305"].key_size(), 32u);

  v1::Defaults defaults;
  ASSERT_TRUE(ciphers_->GetDefaults(ctx().get(), v1::GetDefaultsRequest(), &defaults).ok());
  EXPECT_EQ(defaults.method(), "chacha20-ietf-poly1305");
  v1::SetDefaultsRequest set;
  set.set_method("AEAD_AES_128_GCM");  // IANA name, canonicalised
  ASSERT_TRUE(ciphers_->SetDefaults(ctx().get(), set, &defaults).ok());
  EXPECT_EQ(defaults.method(), "aes-128-gcm");
  ASSERT_TRUE(ciphers_->GetDefaults(ctx().get(), v1::GetDefaultsRequest(), &defaults).ok());
  EXPECT_EQ(defaults.method(), "aes-128-gcm");
  v1::User user;
  ASSERT_TRUE(create("dora", "", 0, &user).ok());
  EXPECT_EQ(user.method(), "aes-128-gcm");
}

// With --allow-insecure-ciphers the 14 legacy stream methods follow, as EDITION_STREAM.
TEST(CipherServiceTest, StreamMethodsListedOnlyWhenAllowed) {
  for (const bool allowed : {false, true}) {
    SCOPED_TRACE(allowed);
    users::RegistryOptions ro;
    ro.allow_insecure_ciphers = allowed;
    auto registry = users::UserRegistry::open(ro);
    ASSERT_TRUE(registry.ok()) << registry.status();
    CipherService service(**registry, nullptr);
    v1::ListCiphersResponse list;
    ASSERT_TRUE(service.ListCiphers(nullptr, nullptr, &list).ok());
    ASSERT_EQ(list.ciphers_size(), allowed ? 22 : 8);
    std::map<std::string, v1::Cipher> by_name;
    for (const v1::Cipher& c : list.ciphers()) by_name[c.name()] = c;
    EXPECT_EQ(by_name.count("aes-256-cfb"), allowed ? 1u : 0u);
    if (!allowed) continue;
    const v1::Cipher& cfb = by_name["aes-256-cfb"];
    EXPECT_EQ(cfb.edition(), v1::EDITION_STREAM);
    EXPECT_FALSE(cfb.aead());
    EXPECT_FALSE(cfb.recommended());
    EXPECT_EQ(cfb.tag_size(), 0u);
    EXPECT_EQ(cfb.key_size(), 32u);
    EXPECT_EQ(cfb.salt_size(), 16u);
    EXPECT_EQ(cfb.selected_provider(), "openssl");
    EXPECT_EQ(by_name["bf-cfb"].salt_size(), 8u);
    EXPECT_EQ(by_name["bf-cfb"].selected_provider(), "openssl-legacy");
    EXPECT_EQ(by_name["salsa20"].selected_provider(), "libsodium");
  }
}

TEST_F(ControlServerTest, Status) {
  v1::User user;
  ASSERT_TRUE(create("erin", "", 0, &user).ok());
  v1::ServerStatus s;
  ASSERT_TRUE(status_->GetStatus(ctx().get(), v1::GetStatusRequest(), &s).ok());
  EXPECT_EQ(s.version(), "1.2.3-test");
  EXPECT_EQ(s.uptime().seconds(), 90);
  EXPECT_EQ(s.uptime().nanos(), 500000000);
  EXPECT_EQ(s.workers(), 2u);
  ASSERT_EQ(s.listeners_size(), 3);
  EXPECT_EQ(s.listeners(1).protocol(), "udp");
  EXPECT_EQ(s.listeners(2).port(), 9100u);
  EXPECT_EQ(s.listeners(2).user(), "cfg");
  EXPECT_EQ(s.active_tcp_sessions(), 7u);
  EXPECT_EQ(s.udp_associations(), 3u);
  EXPECT_EQ(s.users(), 3u);
  ASSERT_EQ(s.crypto_providers_size(), 1);
  EXPECT_EQ(s.crypto_providers(0).name(), "openssl");
  EXPECT_EQ(s.crypto_providers(0).algorithms_size(), 5);
}

TEST_F(ControlServerTest, UsersSurviveAServerRestart) {
  v1::User made;
  ASSERT_TRUE(create("frank", "aes-192-gcm", 9300, &made).ok());
  server_.reset();
  registry_.reset();
  users::RegistryOptions ro;
  ro.state_dir = dir_.path();
  auto registry = users::UserRegistry::open(ro);
  ASSERT_TRUE(registry.ok()) << registry.status();
  auto frank = (*registry)->get("frank");
  ASSERT_TRUE(frank.ok());
  EXPECT_EQ(frank->password, made.password());
  EXPECT_EQ(frank->method, "aes-192-gcm");
  EXPECT_EQ(frank->port, 9300);
}

TEST_F(ControlServerTest, SecretsStayOutOfTheLog) {
  relay::log::setLevel(relay::log::Level::Debug);
  ::testing::internal::CaptureStderr();
  v1::User made;
  ASSERT_TRUE(create("gina", "", 0, &made, "gina-password-1").ok());
  v1::User change;
  change.set_name("gina");
  change.set_password("gina-password-2");
  v1::User out;
  ASSERT_TRUE(update(change, {"password"}, &out).ok());
  ASSERT_TRUE(remove("gina").ok());
  v1::ListUsersResponse list;
  (void)users_->ListUsers(ctx(absl::StrCat("Bearer ", kToken, "-wrong")).get(),
                          v1::ListUsersRequest(), &list);
  const std::string log = ::testing::internal::GetCapturedStderr();
  relay::log::setLevel(relay::log::Level::Info);
  EXPECT_TRUE(absl::StrContains(log, "gina")) << "nothing was logged: the check proves nothing";
  EXPECT_FALSE(absl::StrContains(log, "gina-password")) << log;
  EXPECT_FALSE(absl::StrContains(log, kToken)) << log;
}

// Shadowsocks 2022 users (SIP023): the shared port here serves AEAD-2017 users, so a 2022 user
// takes a port of its own, with an identity key of its own: its URL is the plain SIP002 form
// of method:iPSK:uPSK.
TEST_F(ControlServerTest, Shadowsocks2022UsersGetAnIdentityKeyUrl) {
  v1::User alice;
  grpc::Status mixed = create("alice", "2022-blake3-aes-128-gcm", 0, &alice);
  EXPECT_EQ(mixed.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(mixed.error_message(), "port 8388 serves AEAD-2017 users"))
      << mixed.error_message();
  ASSERT_TRUE(create("alice", "2022-blake3-aes-128-gcm", 9200, &alice).ok());
  std::string raw;
  ASSERT_TRUE(absl::Base64Unescape(alice.password(), &raw));
  EXPECT_EQ(raw.size(), 16u);  // a generated uPSK of the method's key size
  const std::string prefix = "ss://2022-blake3-aes-128-gcm:";
  ASSERT_TRUE(absl::StartsWith(alice.access_url(), prefix)) << alice.access_url();
  EXPECT_TRUE(absl::EndsWith(alice.access_url(), absl::StrCat("@", kPublicHost, ":9200#alice")));
  auto url = relay::parseSsUri(alice.access_url());
  ASSERT_TRUE(url.ok()) << url.status();
  const std::vector<std::string> keys = absl::StrSplit(url->password, ':');
  ASSERT_EQ(keys.size(), 2u) << url->password;
  ASSERT_TRUE(absl::Base64Unescape(keys[0], &raw));
  EXPECT_EQ(raw.size(), 16u);  // the port's identity key
  EXPECT_NE(keys[0], alice.password());
  EXPECT_EQ(keys[1], alice.password());
  EXPECT_EQ(
      absl::StrCat(prefix, relay::percentEncode(url->password), "@", kPublicHost, ":9200#alice"),
      alice.access_url());

  // A given uPSK is checked; the error names the field and the length.
  v1::User bad;
  grpc::Status short_key =
      create("bob", "2022-blake3-aes-128-gcm", 9201, &bad, "c2hvcnQ=" /* 5 bytes */);
  EXPECT_EQ(short_key.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(short_key.error_message(), "password: decodes to 5 bytes"))
      << short_key.error_message();
  EXPECT_TRUE(absl::StrContains(short_key.error_message(), "needs 16"));

  // Rotation: a new uPSK; the port's identity key stays.
  v1::User rotated;
  v1::User change;
  change.set_name("alice");
  ASSERT_TRUE(update(change, {"password"}, &rotated).ok());
  EXPECT_NE(rotated.password(), alice.password());
  auto rotated_url = relay::parseSsUri(rotated.access_url());
  ASSERT_TRUE(rotated_url.ok());
  EXPECT_EQ(rotated_url->password, absl::StrCat(keys[0], ":", rotated.password()));
  v1::User got;
  ASSERT_TRUE(get("alice", &got).ok());
  EXPECT_EQ(got.access_url(), rotated.access_url());

  // ChaCha 2022: no identity headers, one user on its port, the PSK alone in the URL.
  v1::User carol;
  ASSERT_TRUE(create("carol", "2022-blake3-chacha20-poly1305", 9202, &carol).ok());
  auto carol_url = relay::parseSsUri(carol.access_url());
  ASSERT_TRUE(carol_url.ok());
  EXPECT_EQ(carol_url->password, carol.password());
}

TEST(ControlServerOptionsTest, RefusesUnsafeOrBadOptions) {
  users::RegistryOptions ro;
  auto registry = users::UserRegistry::open(ro);
  ASSERT_TRUE(registry.ok());

  ControlServerOptions off;
  off.listen = "off";
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(ControlServer::start(off, **registry).status().code(),
            absl::StatusCode::kInvalidArgument);

  for (const char* listen : {"0.0.0.0:0", "[::]:0", "192.0.2.1:50051"}) {
    ControlServerOptions open;
    open.listen = listen;
    auto s = ControlServer::start(open, **registry);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << listen;
    EXPECT_TRUE(absl::StrContains(s.status().message(), kControlTokenEnv)) << s.status();
  }
  // With a token, a non-loopback address needs TLS or --control-insecure-plaintext.
  ControlServerOptions any;
  any.listen = "0.0.0.0:0";
  any.token = kToken;
  auto plaintext = ControlServer::start(any, **registry);
  EXPECT_EQ(plaintext.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(plaintext.status().message(), "control_listen"))
      << plaintext.status();
  EXPECT_TRUE(absl::StrContains(plaintext.status().message(), "--control-insecure-plaintext"))
      << plaintext.status();
  any.insecure_plaintext = true;
  auto started = ControlServer::start(any, **registry);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_GT((*started)->port(), 0);

  // The port is taken: a second server cannot listen on it.
  ControlServerOptions same;
  same.listen = absl::StrCat("127.0.0.1:", (*started)->port());
  auto second = ControlServer::start(same, **registry);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  (*started)->shutdown();
  (*started)->shutdown();  // idempotent

  ControlServerOptions half_tls;
  half_tls.listen = "127.0.0.1:0";
  half_tls.tls_cert_file = "/nonexistent/cert.pem";
  EXPECT_EQ(ControlServer::start(half_tls, **registry).status().code(),
            absl::StatusCode::kInvalidArgument);
  half_tls.tls_key_file = "/nonexistent/key.pem";
  auto unreadable = ControlServer::start(half_tls, **registry);
  EXPECT_EQ(unreadable.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(unreadable.status().message(), "/nonexistent/cert.pem"));
  ControlServerOptions ca_only;
  ca_only.listen = "127.0.0.1:0";
  ca_only.tls_client_ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(ControlServer::start(ca_only, **registry).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ControlServerOptionsTest, PlaintextTokenOnlyOnLoopbackUnlessAllowed) {
  for (const char* listen : {"127.0.0.1:50051", "[::1]:50051", "localhost:1", "unix:/run/s.sock"}) {
    EXPECT_TRUE(checkControlTransport(listen, /*tls=*/false, /*insecure_plaintext=*/false).ok())
        << listen;
  }
  for (const char* listen : {"0.0.0.0:50051", "[::]:50051", "10.0.0.1:50051"}) {
    const absl::Status s = checkControlTransport(listen, false, false);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << listen;
    EXPECT_TRUE(absl::StrContains(s.message(), "control_listen")) << s;
    EXPECT_TRUE(checkControlTransport(listen, /*tls=*/true, false).ok()) << listen;
    EXPECT_TRUE(checkControlTransport(listen, false, /*insecure_plaintext=*/true).ok()) << listen;
  }
}

TEST(ControlServerOptionsTest, LoopbackAddresses) {
  for (const char* yes :
       {"127.0.0.1:50051", "127.1.2.3:1", "localhost:50051", "[::1]:50051", "[::ffff:127.0.0.1]:5",
        "unix:/run/shadowrelay.sock", "ipv4:127.0.0.1:9"}) {
    EXPECT_TRUE(isLoopbackListenAddress(yes)) << yes;
  }
  for (const char* no : {"0.0.0.0:50051", "[::]:50051", "10.0.0.1:50051", "example.com:50051",
                         "[2001:db8::1]:50051", "128.0.0.1:1", "[::1"}) {
    EXPECT_FALSE(isLoopbackListenAddress(no)) << no;
  }
}

TEST(ControlTokenTest, LoadsFromFileOrEnvironment) {
  TempDir dir;
  const std::string file = dir.file("token");
  shadowrelay::testing::writeSecret(file, "  abc.DEF-123\n");
  auto t = loadControlToken(file, "from-env");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, "abc.DEF-123");  // the file wins, trimmed
  t = loadControlToken("", "from-env");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "from-env");
  t = loadControlToken("", nullptr);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "");
  t = loadControlToken("", "");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "");

  shadowrelay::testing::writeSecret(file, "\n \n");
  t = loadControlToken(file, nullptr);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(absl::StrContains(t.status().message(), file)) << t.status();
  shadowrelay::testing::writeSecret(file, "two words");
  t = loadControlToken(file, nullptr);
  ASSERT_FALSE(t.ok());
  EXPECT_FALSE(absl::StrContains(t.status().message(), "two words"));  // never echoes it
  t = loadControlToken(dir.file("missing"), nullptr);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(absl::StrContains(t.status().message(), dir.file("missing")));
  EXPECT_FALSE(loadControlToken("", "tab\there").ok());
}

TEST(ControlTokenTest, RefusesATokenFileOthersCanRead) {
  TempDir dir;
  const std::string file = dir.file("token");
  shadowrelay::testing::writeText(file, "abc.DEF-123\n");
  ASSERT_EQ(::chmod(file.c_str(), 0640), 0);
  auto t = loadControlToken(file, "from-env");
  ASSERT_FALSE(t.ok());  // not the environment's token instead: the file was asked for
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(t.status().message(), "control-token-file " + file))
      << t.status();
  EXPECT_TRUE(absl::StrContains(t.status().message(), "chmod 600 " + file)) << t.status();
}

TEST(BearerTokenProcessorTest, Accepts) {
  BearerTokenProcessor p("tok");
  EXPECT_TRUE(p.accepts("Bearer tok"));
  EXPECT_TRUE(p.accepts("BEARER tok"));
  EXPECT_FALSE(p.accepts("Bearer tok "));
  EXPECT_FALSE(p.accepts("Bearer to"));
  EXPECT_FALSE(p.accepts("Bearer  tok"));
  EXPECT_FALSE(p.accepts("Bearer "));
  EXPECT_FALSE(p.accepts("tok"));
  EXPECT_FALSE(p.accepts(""));
}

class ControlServerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_pem_ =
        shadowrelay::testing::selfSignedCertificate("localhost", "DNS:localhost,IP:127.0.0.1");
    client_pem_ = shadowrelay::testing::selfSignedCertificate("operator", "DNS:operator");
    shadowrelay::testing::writeText(dir_.file("server.crt"), server_pem_.cert);
    shadowrelay::testing::writeSecret(dir_.file("server.key"), server_pem_.key);
    shadowrelay::testing::writeText(dir_.file("client-ca.crt"), client_pem_.cert);
    auto registry = users::UserRegistry::open(users::RegistryOptions{});
    ASSERT_TRUE(registry.ok());
    registry_ = *std::move(registry);
  }

  std::unique_ptr<ControlServer> start(bool mutual) {
    ControlServerOptions o;
    o.listen = "127.0.0.1:0";
    o.token = kToken;
    o.tls_cert_file = dir_.file("server.crt");
    o.tls_key_file = dir_.file("server.key");
    if (mutual) {
      o.tls_client_ca_file = dir_.file("client-ca.crt");
    }
    auto s = ControlServer::start(o, *registry_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  grpc::Status getDefaults(int port, bool with_client_cert, const std::string& token) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = server_pem_.cert;
    if (with_client_cert) {
      tls.pem_private_key = client_pem_.key;
      tls.pem_cert_chain = client_pem_.cert;
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                             grpc::SslCredentials(tls), args);
    auto stub = v1::CipherService::NewStub(channel);
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) {
      c.AddMetadata("authorization", "Bearer " + token);
    }
    v1::Defaults d;
    return stub->GetDefaults(&c, v1::GetDefaultsRequest(), &d);
  }

  TempDir dir_;
  shadowrelay::testing::Pem server_pem_;
  shadowrelay::testing::Pem client_pem_;
  std::unique_ptr<users::UserRegistry> registry_;
};

TEST_F(ControlServerTlsTest, TlsWithToken) {
  auto server = start(false);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(getDefaults(server->port(), false, kToken).ok());
  EXPECT_EQ(getDefaults(server->port(), false, "").error_code(), StatusCode::UNAUTHENTICATED);
  // A plaintext client cannot talk to it.
  auto plain = v1::CipherService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server->port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  c.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
  v1::Defaults d;
  EXPECT_FALSE(plain->GetDefaults(&c, v1::GetDefaultsRequest(), &d).ok());
}

TEST_F(ControlServerTlsTest, MutualTlsNeedsAClientCertificate) {
  auto server = start(true);
  ASSERT_NE(server, nullptr);
  grpc::Status ok = getDefaults(server->port(), true, kToken);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_FALSE(getDefaults(server->port(), false, kToken).ok());
  EXPECT_EQ(getDefaults(server->port(), true, "").error_code(), StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace shadowrelay::api::control
