// SPDX-License-Identifier: Apache-2.0
#include "api/users/user_registry.h"

#include <filesystem>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::api::users {
namespace {

using shadowrelay::testing::TempDir;
using shadowrelay::testing::writeText;

constexpr uint16_t kSharedPort = 8388;

User configured(const std::string& name, uint16_t port, UserSource source = UserSource::Config) {
  User u;
  u.name = name;
  u.method = "chacha20-ietf-poly1305";
  u.password = "configured-" + name;
  u.port = port;
  u.source = source;
  return u;
}

RegistryOptions baseOptions(const std::string& state_dir) {
  RegistryOptions o;
  o.state_dir = state_dir;
  o.default_method = "aes-128-gcm";
  o.shared_port = kSharedPort;
  o.reserved_ports = {50051};
  o.configured_users = {configured("default", 0, UserSource::Default), configured("cfg", 9100)};
  o.now = [] { return absl::FromUnixSeconds(1700000000); };
  return o;
}

std::unique_ptr<UserRegistry> openRegistry(RegistryOptions options) {
  auto r = UserRegistry::open(std::move(options));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : nullptr;
}

NewUser newUser(const std::string& name, const std::string& method = "", uint16_t port = 0) {
  NewUser n;
  n.name = name;
  n.method = method;
  n.port = port;
  return n;
}

bool keyEquals(const crypto::MasterKey& key, const crypto::MasterKey& expected) {
  return std::equal(key.bytes().begin(), key.bytes().end(), expected.bytes().begin(),
                    expected.bytes().end());
}

TEST(UserRegistryTest, CreateGeneratesARandomPasswordOfTheMethodsKeySize) {
  TempDir dir;
  auto r = openRegistry(baseOptions(dir.path()));
  auto alice = r->create(newUser("alice"));
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->method, "aes-128-gcm");  // the default method
  std::string raw;
  ASSERT_TRUE(absl::Base64Unescape(alice->password, &raw));
  EXPECT_EQ(raw.size(), 16u);
  auto bob = r->create(newUser("bob", "AES-256-GCM"));
  ASSERT_TRUE(bob.ok());
  EXPECT_EQ(bob->method, "aes-256-gcm");  // canonical name
  ASSERT_TRUE(absl::Base64Unescape(bob->password, &raw));
  EXPECT_EQ(raw.size(), 32u);
  EXPECT_NE(alice->password, bob->password);
  EXPECT_EQ(alice->created, absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(alice->source, UserSource::Api);
  EXPECT_TRUE(alice->enabled);
}

TEST(UserRegistryTest, ErrorCodes) {
  TempDir dir;
  auto r = openRegistry(baseOptions(dir.path()));
  ASSERT_TRUE(r->create(newUser("alice")).ok());

  EXPECT_EQ(r->create(newUser("")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->create(newUser("-bad")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->create(newUser("a b")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->create(newUser(std::string(65, 'a'))).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->create(newUser("x", "rc4-md5")).status().code(), absl::StatusCode::kInvalidArgument);
  NewUser both = newUser("x");
  both.password = "p";
  both.key = "AAECAwQFBgcICQoLDA0ODw==";
  EXPECT_EQ(r->create(both).status().code(), absl::StatusCode::kInvalidArgument);
  NewUser short_key = newUser("x", "aes-256-gcm");
  short_key.key = "AAECAwQFBgcICQoLDA0ODw==";  // 16 bytes, method needs 32
  EXPECT_EQ(r->create(short_key).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(r->create(newUser("alice")).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r->create(newUser("cfg")).status().code(), absl::StatusCode::kAlreadyExists);

  EXPECT_EQ(r->get("nobody").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r->update("nobody", UserUpdate{}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r->remove("nobody").code(), absl::StatusCode::kNotFound);

  UserUpdate disable;
  disable.enabled = false;
  for (const char* name : {"cfg", "default"}) {
    auto s = r->update(name, disable);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << name;
    EXPECT_EQ(r->remove(name).code(), absl::StatusCode::kFailedPrecondition) << name;
  }
  EXPECT_TRUE(r->get("cfg")->enabled);

  EXPECT_EQ(r->create(newUser("p1", "", 9100)).status().code(),  // cfg's port
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r->create(newUser("p2", "", 50051)).status().code(),  // reserved
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(r->create(newUser("p3", "", 9200)).ok());
  auto clash = r->create(newUser("p4", "", 9200));
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(clash.status().message(), "p3")) << clash.status();

  UserUpdate bad_method;
  bad_method.method = "bogus";
  EXPECT_EQ(r->update("alice", bad_method).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r->size(), 4u);  // default, cfg, alice, p3 and nothing else
}

// Legacy stream methods: only with --allow-insecure-ciphers, and alone on their port (nothing
// authenticates them, so nothing could tell two users' keys apart).
TEST(UserRegistryTest, StreamMethodsNeedTheFlagAndAPortOfTheirOwn) {
  {
    TempDir dir;
    auto r = openRegistry(baseOptions(dir.path()));
    auto refused = r->create(newUser("s", "aes-256-cfb", 9400));
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(refused.status().message(), "--allow-insecure-ciphers"))
        << refused.status();
    EXPECT_TRUE(r->insecureMethodsInUse().empty());
  }
  TempDir dir;
  RegistryOptions o = baseOptions(dir.path());
  o.allow_insecure_ciphers = true;
  auto r = openRegistry(std::move(o));
  ASSERT_TRUE(r->create(newUser("s", "aes-256-cfb", 9400)).ok());
  ASSERT_TRUE(r->create(newUser("t", "salsa20", 9401)).ok());
  EXPECT_EQ(r->insecureMethodsInUse(), (std::vector<std::string>{"aes-256-cfb", "salsa20"}));
  // The shared port has the -k user: a stream user may not join it, in either order.
  auto shared = r->create(newUser("u", "rc4-md5", 0));
  EXPECT_EQ(shared.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(shared.status().message(), "serves one user")) << shared.status();
  UserUpdate to_stream;
  to_stream.method = "chacha20";
  auto moved = r->create(newUser("v"));
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(r->update("v", to_stream).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r->create(newUser("w", "", 9400)).status().code(),
            absl::StatusCode::kFailedPrecondition);  // s's dedicated port
}

TEST(UserRegistryTest, PortCheckHookAndSharedPort) {
  TempDir dir;
  RegistryOptions o = baseOptions(dir.path());
  std::vector<uint16_t> asked;
  o.port_check = [&asked](uint16_t port) {
    asked.push_back(port);
    return port == 9300 ? absl::UnavailableError("address in use") : absl::OkStatus();
  };
  auto r = openRegistry(std::move(o));
  auto busy = r->create(newUser("a", "", 9300));
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(busy.status().message(), "address in use"));
  auto shared = r->create(newUser("b", "", kSharedPort));
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_EQ(shared->port, 0);  // the shared port
  EXPECT_EQ(asked, std::vector<uint16_t>{9300});
}

TEST(UserRegistryTest, PluginsOnDedicatedPortsOnlyCheckedPublishedAndKept) {
  TempDir dir;
  RegistryOptions o = baseOptions(dir.path());
  o.plugin_check = [](const std::string& plugin) {
    return plugin == "obfs-server" ? absl::OkStatus() : absl::NotFoundError("not found in PATH");
  };
  auto r = openRegistry(o);
  NewUser shared = newUser("shared");
  shared.plugin = "obfs-server";
  EXPECT_TRUE(absl::StrContains(r->create(shared).status().message(),
                                "plugin: only a user on a dedicated port"));
  NewUser unknown = newUser("unknown", "", 9301);
  unknown.plugin = "nope";
  auto refused = r->create(unknown);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.status().message(), "plugin: not found in PATH");
  NewUser opts_only = newUser("opts", "", 9302);
  opts_only.plugin_opts = "obfs=http";
  EXPECT_EQ(r->create(opts_only).status().message(), "plugin_opts: needs a plugin");
  NewUser good = newUser("good", "", 9303);
  good.plugin = "obfs-server";
  good.plugin_opts = "obfs=http";
  ASSERT_TRUE(r->create(good).ok());
  const relay::UserTablePtr table = r->snapshot();
  EXPECT_EQ(table->onPort(9303).front()->plugin, "obfs-server");
  EXPECT_EQ(table->onPort(9303).front()->plugin_opts, "obfs=http");
  UserUpdate remove;
  remove.plugin = "";
  auto removed = r->update("good", remove);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_TRUE(removed->plugin.empty());
  EXPECT_TRUE(removed->plugin_opts.empty());  // no plugin, no options
  UserUpdate back;
  back.plugin = "obfs-server";
  back.plugin_opts = "obfs=tls";
  ASSERT_TRUE(r->update("good", back).ok());
  r.reset();
  auto reopened = openRegistry(o);  // the store keeps them
  auto kept = reopened->get("good");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->plugin, "obfs-server");
  EXPECT_EQ(kept->plugin_opts, "obfs=tls");
}

// bytes_per_second (issue 18 §3): a user's own, else --default-bytes-per-second, in the
// published table and in the live state open sessions read; an update reaches both.
TEST(UserRegistryTest, BytesPerSecondOwnOrDefaultReachesTheTableAndTheLiveState) {
  TempDir dir;
  RegistryOptions o = baseOptions(dir.path());
  o.default_bytes_per_second = 4096;
  o.configured_users[1].limits.bytes_per_second = 777;  // "cfg", from the config file
  auto r = openRegistry(o);
  NewUser fast = newUser("fast");
  fast.limits.bytes_per_second = 1 << 20;
  ASSERT_TRUE(r->create(fast).ok());
  ASSERT_TRUE(r->create(newUser("plain")).ok());
  relay::UserTablePtr table = r->snapshot();
  EXPECT_EQ(table->find("fast")->bytes_per_second, 1u << 20);
  EXPECT_EQ(table->find("plain")->bytes_per_second, 4096u);    // names none: the default
  EXPECT_EQ(table->find("default")->bytes_per_second, 4096u);  // -k too
  EXPECT_EQ(table->find("cfg")->bytes_per_second, 777u);
  EXPECT_EQ(r->get("plain")->limits.bytes_per_second, 0u);     // the API shows its own
  const std::shared_ptr<relay::UserLive> live = table->find("fast")->live;
  EXPECT_EQ(live->bytes_per_second.load(), 1u << 20);

  UserUpdate slower;
  slower.bytes_per_second = 1000;
  ASSERT_TRUE(r->update("fast", slower).ok());
  EXPECT_EQ(r->snapshot()->find("fast")->bytes_per_second, 1000u);
  EXPECT_EQ(live->bytes_per_second.load(), 1000u);  // what open sessions of the user read
  UserUpdate none;
  none.bytes_per_second = 0;
  ASSERT_TRUE(r->update("fast", none).ok());
  EXPECT_EQ(live->bytes_per_second.load(), 4096u);

  r.reset();
  auto reopened = openRegistry(o);  // kept in the store
  EXPECT_EQ(reopened->get("fast")->limits.bytes_per_second, 0u);
  EXPECT_EQ(reopened->snapshot()->find("fast")->bytes_per_second, 4096u);
  UserUpdate again;
  again.bytes_per_second = 5;
  ASSERT_TRUE(reopened->update("fast", again).ok());
  reopened.reset();
  EXPECT_EQ(openRegistry(o)->get("fast")->limits.bytes_per_second, 5u);
}

// Issue 19 §2, the registry's part (the store calls these): the other servers' live counts
// reach the users' UserLive, also of a user that gets here after them; this server's counts
// of limited users are what it publishes, its devices by the cluster's ids.
TEST(UserRegistryTest, LiveCountsOfOtherServersReachTheTableAndOwnOnesArePublished) {
  RegistryOptions o = baseOptions("");
  o.device_window = std::chrono::seconds(60);
  auto r = openRegistry(o);
  NewUser limited = newUser("limited");
  limited.limits.max_connections = 3;
  limited.limits.max_devices = 2;
  ASSERT_TRUE(r->create(limited).ok());
  ASSERT_TRUE(r->create(newUser("free")).ok());

  const std::string secret = "the cluster's device key";
  const relay::DeviceIdsPtr before = r->deviceIds();
  r->applyDeviceKey(secret);
  const relay::DeviceIdsPtr cluster = relay::DeviceIds::fromSecret(secret);
  const std::string device("\x0a\x00\x00\x01", 4), other("\x0a\x00\x00\x02", 4);
  EXPECT_EQ(r->deviceIds()->id(device), cluster->id(device));
  EXPECT_NE(before->id(device), cluster->id(device));

  // Nothing live here yet: nothing to publish.
  EXPECT_TRUE(r->liveCounts().empty());
  const relay::UserTablePtr table = r->snapshot();  // keeps `user` valid after an update
  const relay::RelayUser* user = table->find("limited");
  user->live->tcp_sessions = 2;
  std::optional<relay::DeviceLease> lease = user->admitDevice(device);
  ASSERT_TRUE(lease.has_value());
  table->find("free")->live->tcp_sessions = 5;  // no limit: not published
  std::vector<LiveCount> own = r->liveCounts();
  ASSERT_EQ(own.size(), 1u);
  EXPECT_EQ(own[0].name, "limited");
  EXPECT_EQ(own[0].connections, 2u);
  EXPECT_EQ(own[0].devices, std::vector<std::string>{cluster->id(device)});

  // Another server has a session and a device of "limited", and one of "late", not here yet.
  const std::vector<LiveCount> remote = {{"late", 1, {cluster->id(other)}},
                                         {"limited", 1, {cluster->id(other)}}};
  r->applyRemoteLive(remote);
  EXPECT_EQ(user->live->remote_tcp_sessions.load(), 1u);
  EXPECT_EQ(user->live->devices->remoteOnly(std::chrono::seconds(60)),
            std::vector<std::string>{cluster->id(other)});
  EXPECT_FALSE(user->admitsNewSession(2));  // 2 here + 1 elsewhere = max_connections
  EXPECT_TRUE(user->admitsNewSession(1));
  // The limit of 2 devices is full: a third is refused, the one elsewhere is admitted.
  EXPECT_FALSE(user->admitDevice(std::string("\x0a\x00\x00\x03", 4)).has_value());
  EXPECT_TRUE(user->admitDevice(other).has_value());

  // A new table (an update) keeps them: the user's UserLive is carried.
  UserUpdate more;
  more.max_devices = 5;
  ASSERT_TRUE(r->update("limited", more).ok());
  EXPECT_EQ(r->snapshot()->find("limited")->live->remote_tcp_sessions.load(), 1u);
  // A user that arrives after its live counts gets them.
  NewUser late = newUser("late");
  late.limits.max_connections = 1;
  ASSERT_TRUE(r->create(late).ok());
  const relay::UserTablePtr later = r->snapshot();
  const relay::RelayUser* late_user = later->find("late");
  EXPECT_EQ(late_user->live->remote_tcp_sessions.load(), 1u);
  EXPECT_FALSE(late_user->admitsNewSession(0));

  // Nothing live elsewhere any more.
  r->applyRemoteLive(std::vector<LiveCount>{{"late", 0, {}}, {"limited", 0, {}}});
  EXPECT_TRUE(late_user->admitsNewSession(0));
  EXPECT_EQ(user->live->remote_tcp_sessions.load(), 0u);
  EXPECT_TRUE(user->live->devices->remoteOnly(std::chrono::seconds(60)).empty());
  ASSERT_TRUE(r->remove("late").ok());
  ASSERT_TRUE(r->create(late).ok());  // a new user of that name starts from nothing
  EXPECT_EQ(r->snapshot()->find("late")->live->remote_tcp_sessions.load(), 0u);
}

TEST(UserRegistryTest, SnapshotsArePublishedInOrderWithDerivedKeys) {
  TempDir dir;
  auto r = openRegistry(baseOptions(dir.path()));
  std::vector<relay::UserTablePtr> seen;
  const uint64_t id = r->subscribe([&seen](const relay::UserTablePtr& s) { seen.push_back(s); });
  ASSERT_EQ(seen.size(), 1u);  // the current one, at once
  EXPECT_EQ(seen[0]->generation(), 1u);
  EXPECT_EQ(seen[0]->size(), 2u);

  NewUser alice = newUser("alice", "aes-256-gcm", 9400);
  alice.password = "pw";
  ASSERT_TRUE(r->create(alice).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1]->generation(), 2u);
  const relay::RelayUser* a = seen[1]->find("alice");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->method->name, "aes-256-gcm");
  EXPECT_TRUE(keyEquals(a->key, crypto::evpBytesToKey("pw", 32)));
  EXPECT_EQ(a->port, 9400);
  EXPECT_EQ(seen[1]->dedicatedPorts(), (std::vector<uint16_t>{9100, 9400}));
  EXPECT_EQ(seen[1]->onPort(0).size(), 1u);          // "default"
  EXPECT_EQ(seen[0]->find("alice"), nullptr);        // old snapshots never change

  UserUpdate rotate;
  rotate.password = "";  // generate
  auto rotated = r->update("alice", rotate);
  ASSERT_TRUE(rotated.ok());
  EXPECT_NE(rotated->password, "pw");
  ASSERT_EQ(seen.size(), 3u);
  const relay::RelayUser* a2 = seen[2]->find("alice");
  EXPECT_FALSE(a2->sameKey(*a));
  EXPECT_FALSE(seen[2]->keeps(*a));  // sessions of the old key end
  EXPECT_EQ(a2->live, a->live);      // the connection count carries over
  EXPECT_TRUE(keyEquals(a2->key, crypto::evpBytesToKey(rotated->password, 32)));

  UserUpdate same;
  same.enabled = true;  // already enabled: no change, no snapshot
  ASSERT_TRUE(r->update("alice", same).ok());
  EXPECT_EQ(seen.size(), 3u);

  UserUpdate disable;
  disable.enabled = false;
  ASSERT_TRUE(r->update("alice", disable).ok());
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_FALSE(seen[3]->find("alice")->admitsNewSession(0));
  EXPECT_TRUE(seen[3]->onPort(9400).empty());

  UserUpdate to_key;
  to_key.key = crypto::randomBase64Key(32);
  ASSERT_TRUE(r->update("alice", to_key).ok());
  ASSERT_EQ(seen.size(), 5u);
  auto decoded = crypto::decodeBase64Key(*to_key.key, *seen[4]->find("alice")->method);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(keyEquals(seen[4]->find("alice")->key, *decoded));
  EXPECT_TRUE(r->get("alice")->password.empty());

  // A key no longer fits once the method wants a different size.
  UserUpdate smaller;
  smaller.method = "aes-128-gcm";
  EXPECT_EQ(r->update("alice", smaller).status().code(), absl::StatusCode::kInvalidArgument);

  ASSERT_TRUE(r->remove("alice").ok());
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[5]->find("alice"), nullptr);
  EXPECT_EQ(seen[5]->generation(), 6u);
  EXPECT_EQ(r->snapshot(), seen[5]);

  r->unsubscribe(id);
  ASSERT_TRUE(r->create(newUser("zed")).ok());
  EXPECT_EQ(seen.size(), 6u);
}

TEST(UserRegistryTest, ApiUsersAndDefaultMethodSurviveRestart) {
  TempDir dir;
  User before;
  {
    auto r = openRegistry(baseOptions(dir.path()));
    NewUser n = newUser("alice", "", 9500);
    n.limits = {3, 1000};
    auto made = r->create(n);
    ASSERT_TRUE(made.ok());
    before = *made;
    ASSERT_TRUE(r->setDefaultMethod("xchacha20-ietf-poly1305").ok());
    ASSERT_TRUE(r->create(newUser("gone")).ok());
    ASSERT_TRUE(r->remove("gone").ok());
  }
  auto r = openRegistry(baseOptions(dir.path()));
  auto alice = r->get("alice");
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(*alice, before);
  EXPECT_EQ(r->get("gone").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r->defaultMethod(), "xchacha20-ietf-poly1305");
  EXPECT_EQ(r->size(), 3u);
  // Configured users are never written to the store.
  auto stored = decodeStore(shadowrelay::testing::readText(dir.file("users.json")));
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->users.size(), 1u);
  EXPECT_EQ(stored->users[0].name, "alice");
}

TEST(UserRegistryTest, GivenDefaultMethodWinsOverTheStoredOne) {
  TempDir dir;
  {
    auto r = openRegistry(baseOptions(dir.path()));
    ASSERT_TRUE(r->setDefaultMethod("xchacha20-ietf-poly1305").ok());
  }
  RegistryOptions given = baseOptions(dir.path());
  given.default_method = "aes-128-gcm";
  given.default_method_given = true;
  EXPECT_EQ(openRegistry(given)->defaultMethod(), "aes-128-gcm");
  // Not given: the stored value is still there and wins.
  RegistryOptions not_given = baseOptions(dir.path());
  not_given.default_method = "aes-128-gcm";
  EXPECT_EQ(openRegistry(not_given)->defaultMethod(), "xchacha20-ietf-poly1305");
}

TEST(UserRegistryTest, WithoutStateDirUsersLiveInMemory) {
  RegistryOptions o = baseOptions("");
  auto r = openRegistry(o);
  ASSERT_TRUE(r->create(newUser("alice")).ok());
  EXPECT_EQ(r->storePath(), "");
  EXPECT_TRUE(r->flush().ok());
}

TEST(UserRegistryTest, StoredUserClashingWithConfigurationIsRefused) {
  TempDir dir;
  {
    auto r = openRegistry(baseOptions(dir.path()));
    ASSERT_TRUE(r->create(newUser("alice", "", 9600)).ok());
  }
  RegistryOptions o = baseOptions(dir.path());
  o.configured_users.push_back(configured("alice", 0));
  auto r = UserRegistry::open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), dir.path() + "/users.json")) << r.status();

  RegistryOptions port_clash = baseOptions(dir.path());
  port_clash.configured_users.push_back(configured("carol", 9600));
  auto r2 = UserRegistry::open(port_clash);
  ASSERT_FALSE(r2.ok());
  EXPECT_TRUE(absl::StrContains(r2.status().message(), "9600")) << r2.status();
}

TEST(UserRegistryTest, InvalidConfiguredUsersAreRefused) {
  RegistryOptions o = baseOptions("");
  o.configured_users.push_back(configured("cfg", 0));  // twice
  EXPECT_FALSE(UserRegistry::open(o).ok());
  o = baseOptions("");
  o.configured_users[1].method = "bogus";
  EXPECT_EQ(UserRegistry::open(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = baseOptions("");
  o.configured_users[1].password.clear();
  EXPECT_FALSE(UserRegistry::open(o).ok());
  o = baseOptions("");
  o.default_method = "bogus";
  EXPECT_FALSE(UserRegistry::open(o).ok());
}

TEST(UserRegistryTest, CorruptStoreIsAnErrorNamingTheFile) {
  TempDir dir;
  {
    auto r = openRegistry(baseOptions(dir.path()));
    ASSERT_TRUE(r->create(newUser("alice")).ok());
  }
  writeText(dir.file("users.json"), "{");
  auto r = UserRegistry::open(baseOptions(dir.path()));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), dir.file("users.json"))) << r.status();
}

TEST(UserRegistryTest, FailedWriteChangesNothing) {
  TempDir dir;
  auto r = openRegistry(baseOptions(dir.path()));
  std::vector<relay::UserTablePtr> seen;
  r->subscribe([&seen](const relay::UserTablePtr& s) { seen.push_back(s); });
  // A directory where the temporary file goes makes every save fail.
  std::filesystem::create_directory(dir.file("users.json.tmp"));
  auto made = r->create(newUser("alice"));
  EXPECT_EQ(made.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r->get("alice").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_FALSE(r->setDefaultMethod("aes-256-gcm").ok());
  EXPECT_EQ(r->defaultMethod(), "aes-128-gcm");
  std::filesystem::remove(dir.file("users.json.tmp"));
  EXPECT_TRUE(r->create(newUser("alice")).ok());
  EXPECT_EQ(seen.size(), 2u);
}

TEST(UserRegistryTest, TrafficAccumulatesPersistsAndEnforcesQuota) {
  TempDir dir;
  {
    auto r = openRegistry(baseOptions(dir.path()));
    NewUser n = newUser("alice");
    n.limits.data_quota_bytes = 1000;
    ASSERT_TRUE(r->create(n).ok());
    std::vector<relay::UserTablePtr> seen;
    r->subscribe([&seen](const relay::UserTablePtr& s) { seen.push_back(s); });

    r->addTraffic("alice", {400, 100, 1, 0});
    r->addTraffic("nobody", {1, 1, 1, 1});  // ignored
    EXPECT_EQ(seen.size(), 1u);             // under quota: no new snapshot
    EXPECT_EQ(r->get("alice")->traffic, (TrafficCounters{400, 100, 1, 0}));
    EXPECT_FALSE(r->get("alice")->quotaExceeded());

    const TrafficDelta batch[] = {{"alice", {300, 200, 2, 5}}, {"cfg", {1, 2, 3, 4}}};
    r->addTraffic(batch);
    ASSERT_EQ(seen.size(), 2u);  // alice reached 1000 bytes
    EXPECT_TRUE(seen[1]->find("alice")->quota_exceeded);
    EXPECT_FALSE(seen[1]->find("alice")->admitsNewSession(0));
    EXPECT_TRUE(r->get("alice")->quotaExceeded());

    UserUpdate raise;
    raise.data_quota_bytes = 5000;
    ASSERT_TRUE(r->update("alice", raise).ok());
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_TRUE(seen[2]->find("alice")->admitsNewSession(0));
    ASSERT_TRUE(r->flush().ok());
  }
  auto r = openRegistry(baseOptions(dir.path()));
  EXPECT_EQ(r->get("alice")->traffic, (TrafficCounters{700, 300, 3, 5}));
  EXPECT_EQ(r->get("cfg")->traffic, TrafficCounters{});  // configured users start again
  // The destructor saves what flush() did not.
  r->addTraffic("alice", {1, 0, 0, 0});
  r.reset();
  r = openRegistry(baseOptions(dir.path()));
  EXPECT_EQ(r->get("alice")->traffic.bytes_up, 701u);
}

TEST(UserRegistryTest, ConcurrentChangesPublishEveryGenerationOnce) {
  TempDir dir;
  auto r = openRegistry(baseOptions(dir.path()));
  absl::Mutex mu;
  std::vector<uint64_t> generations;
  r->subscribe([&](const relay::UserTablePtr& s) {
    absl::MutexLock lock(&mu);
    generations.push_back(s->generation());
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&r, t] {
      for (int i = 0; i < 10; ++i) {
        const std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        EXPECT_TRUE(r->create(newUser(name)).ok());
        r->addTraffic(name, {1, 1, 1, 1});
        (void)r->list();
        if (i % 2 == 0) {
          EXPECT_TRUE(r->remove(name).ok());
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  absl::MutexLock lock(&mu);
  ASSERT_EQ(generations.size(), 1u + 40u + 20u);
  for (size_t i = 0; i < generations.size(); ++i) {
    EXPECT_EQ(generations[i], i + 1);
  }
  EXPECT_EQ(r->size(), 2u + 20u);
}

}  // namespace
}  // namespace shadowrelay::api::users
