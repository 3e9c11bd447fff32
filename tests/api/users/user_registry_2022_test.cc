// SPDX-License-Identifier: Apache-2.0
// The registry with Shadowsocks 2022 users (SIP023, PROTOCOL.md §2.7): one generation and one
// 2022 method per port, a ChaCha 2022 port with one user, the identity key of a port (-k on the
// shared port, else generated and kept in the store), what a client puts in its password, the
// published lookup, uPSK generation, validation and rotation.
#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "api/users/user_registry.h"
#include "api/users/user_store.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "gtest/gtest.h"
#include "relay/users/user_table.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::api::users {
namespace {

using shadowrelay::testing::readText;
using shadowrelay::testing::TempDir;

constexpr uint16_t kSharedPort = 8388;
constexpr const char* kAes128 = "2022-blake3-aes-128-gcm";
constexpr const char* kAes256 = "2022-blake3-aes-256-gcm";
constexpr const char* kChaCha = "2022-blake3-chacha20-poly1305";
constexpr const char* kServerKey16 = "AAECAwQFBgcICQoLDA0ODw==";  // 00..0f
constexpr const char* kOtherKey16 = "EBESExQVFhcYGRobHB0eHw==";   // 10..1f

// The -k user "default" of `method` with `psk` (none: no -k at all).
RegistryOptions options(const std::string& state_dir, const std::string& method,
                        const std::string& psk) {
  RegistryOptions o;
  o.state_dir = state_dir;
  o.default_method = method;
  o.shared_port = kSharedPort;
  if (!psk.empty()) {
    User k;
    k.name = "default";
    k.method = method;
    k.password = psk;
    k.source = UserSource::Default;
    o.configured_users.push_back(k);
  }
  o.now = [] { return absl::FromUnixSeconds(1700000000); };
  return o;
}

std::unique_ptr<UserRegistry> openRegistry(RegistryOptions o) {
  auto r = UserRegistry::open(std::move(o));
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : nullptr;
}

NewUser newUser(const std::string& name, const std::string& method, uint16_t port = 0) {
  NewUser n;
  n.name = name;
  n.method = method;
  n.port = port;
  return n;
}

crypto::MasterKey decoded(const std::string& base64) {
  std::string raw;
  EXPECT_TRUE(absl::Base64Unescape(base64, &raw)) << base64;
  return crypto::MasterKey(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
}

bool sameBytes(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// The user of `port`'s published lookup named by the hash of `psk` (base64), or "".
std::string foundBy(const UserRegistry& r, uint16_t port, const std::string& psk) {
  const relay::PortIdentity* identity = r.snapshot()->identityPort(port);
  if (identity == nullptr) return "";
  const relay::RelayUserPtr user = identity->user(crypto::userHash(decoded(psk).bytes()));
  return user == nullptr ? "" : user->name;
}

void expectStatus(const absl::Status& s, absl::StatusCode code, const std::string& part) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), part)) << s.message() << "\nlacks: " << part;
}

TEST(UserRegistry2022Test, ASharedPortServesOneGenerationAndOne2022Method) {
  // A 2017 -k server: 2022 users on the shared port are refused, naming its generation.
  auto r2017 = openRegistry(options("", "aes-256-gcm", "a-2017-password"));
  expectStatus(r2017->create(newUser("alice", kAes128)).status(),
               absl::StatusCode::kFailedPrecondition,
               "port 8388 serves AEAD-2017 users (user \"default\", aes-256-gcm); a user of "
               "Shadowsocks 2022 needs another port");
  auto dedicated = r2017->create(newUser("alice", kAes128, 9200));  // a port of its own
  ASSERT_TRUE(dedicated.ok()) << dedicated.status();
  EXPECT_TRUE(r2017->create(newUser("bob", "aes-128-gcm")).ok());

  // A 2022 -k server: the reverse, and another 2022 method, are refused on the shared port.
  auto r = openRegistry(options("", kAes128, kServerKey16));
  expectStatus(r->create(newUser("carol", "aes-128-gcm")).status(),
               absl::StatusCode::kFailedPrecondition,
               "port 8388 serves Shadowsocks 2022 users (user \"default\", "
               "2022-blake3-aes-128-gcm); a user of AEAD-2017 needs another port");
  expectStatus(r->create(newUser("carol", kAes256)).status(), absl::StatusCode::kFailedPrecondition,
               "port 8388 serves 2022-blake3-aes-128-gcm (user \"default\"): one 2022 method per "
               "port");
  EXPECT_TRUE(r->create(newUser("carol", kAes256, 9300)).ok());
  EXPECT_TRUE(r->create(newUser("dave", "aes-128-gcm", 9301)).ok());
  ASSERT_TRUE(r->create(newUser("erin", kAes128)).ok());
  // Switching a shared-port user to another generation is refused the same way.
  UserUpdate to2017;
  to2017.method = "aes-128-gcm";
  to2017.password = "";
  expectStatus(r->update("erin", to2017).status(), absl::StatusCode::kFailedPrecondition,
               "serves Shadowsocks 2022 users");
  EXPECT_EQ(r->get("erin")->method, kAes128);
}

TEST(UserRegistry2022Test, ASharedUdpPortWithoutUsersServesTheGenerationOfItsServer) {
  // No -k (users from the API or etcd only): nothing on the port names a generation, but with
  // -u its UDP server was built for -m's, so the other generation is refused there.
  RegistryOptions o = options("", "aes-256-gcm", "");
  o.shared_port_udp_method = "aes-256-gcm";
  auto r2017 = openRegistry(o);
  expectStatus(r2017->create(newUser("alice", kAes128)).status(),
               absl::StatusCode::kFailedPrecondition,
               "port 8388 serves UDP (-u) for AEAD-2017 users (the method the server started "
               "with, aes-256-gcm); a user of Shadowsocks 2022 needs another port");
  EXPECT_TRUE(r2017->create(newUser("alice", kAes128, 9200)).ok());
  ASSERT_TRUE(r2017->create(newUser("bob", "chacha20-ietf-poly1305")).ok());
  UserUpdate to2022;
  to2022.method = kAes128;
  to2022.password = "";
  expectStatus(r2017->update("bob", to2022).status(), absl::StatusCode::kFailedPrecondition,
               "serves UDP (-u) for AEAD-2017 users");

  o = options("", kAes128, "");
  o.shared_port_udp_method = kAes128;
  auto r2022 = openRegistry(o);
  expectStatus(r2022->create(newUser("carol", "aes-128-gcm")).status(),
               absl::StatusCode::kFailedPrecondition,
               "port 8388 serves UDP (-u) for Shadowsocks 2022 users (the method the server "
               "started with, 2022-blake3-aes-128-gcm); a user of AEAD-2017 needs another port");
  EXPECT_TRUE(r2022->create(newUser("carol", kAes128)).ok());

  // Without UDP on the shared port, the first user chooses.
  auto tcp_only = openRegistry(options("", "aes-256-gcm", ""));
  EXPECT_TRUE(tcp_only->create(newUser("dave", kAes128)).ok());
}

TEST(UserRegistry2022Test, AChaCha2022PortServesOneUser) {
  auto r = openRegistry(options("", kChaCha, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="));
  expectStatus(r->create(newUser("alice", kChaCha)).status(), absl::StatusCode::kFailedPrecondition,
               "2022-blake3-chacha20-poly1305 has no identity headers (SIP023), so a port with "
               "it serves one user, and port 8388 has user \"default\"");
  auto alone = r->create(newUser("alice", kChaCha, 9400));
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_EQ(r->clientPassword(*alone), alone->password);  // one PSK, no identity header
  EXPECT_EQ(r->snapshot()->identityPort(9400), nullptr);
  // Nobody joins it on its dedicated port either (the port belongs to alice).
  EXPECT_EQ(r->create(newUser("bob", kChaCha, 9400)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(UserRegistry2022Test, OnTheSharedPortTheServersKeyBecomesTheIdentityKey) {
  TempDir dir;
  {
    auto r = openRegistry(options(dir.path(), kAes128, kServerKey16));
    // -k alone: one PSK, no identity headers.
    EXPECT_EQ(r->snapshot()->identityPort(0), nullptr);
    EXPECT_EQ(r->clientPassword(*r->get("default")), kServerKey16);

    auto alice = r->create(newUser("alice", kAes128));
    ASSERT_TRUE(alice.ok()) << alice.status();
    EXPECT_EQ(decoded(alice->password).size(), 16u);  // a generated uPSK of the key size
    EXPECT_EQ(r->clientPassword(*alice), absl::StrCat(kServerKey16, ":", alice->password));
    EXPECT_EQ(r->clientPassword(*r->get("default")), "");  // only the identity key now
    const relay::PortIdentity* port = r->snapshot()->identityPort(0);
    ASSERT_NE(port, nullptr);
    EXPECT_TRUE(sameBytes(port->identityKey(), decoded(kServerKey16).bytes()));
    EXPECT_EQ(foundBy(*r, 0, alice->password), "alice");
    EXPECT_EQ(foundBy(*r, 0, kServerKey16), "");
    EXPECT_TRUE(r->snapshot()->onPort(0).size() == 1 &&
                r->snapshot()->onPort(0).front()->name == "alice");

    // The last user gone, -k still is only the identity key: every former user has it.
    ASSERT_TRUE(r->remove("alice").ok());
    ASSERT_NE(r->snapshot()->identityPort(0), nullptr);
    EXPECT_EQ(r->snapshot()->identityPort(0)->size(), 0u);
    EXPECT_TRUE(r->snapshot()->onPort(0).empty());
    EXPECT_EQ(r->clientPassword(*r->get("default")), "");
  }
  // So after a restart (the store notes which -k it was, by hash, not the key itself) ...
  const std::string text = readText(dir.file("users.json"));
  EXPECT_FALSE(absl::StrContains(text, kServerKey16));
  EXPECT_TRUE(absl::StrContains(text, "key_hash"));
  {
    auto r = openRegistry(options(dir.path(), kAes128, kServerKey16));
    EXPECT_NE(r->snapshot()->identityPort(0), nullptr);
    EXPECT_EQ(r->clientPassword(*r->get("default")), "");
  }
  // ... but a new -k is a single PSK again.
  auto r = openRegistry(options(dir.path(), kAes128, kOtherKey16));
  EXPECT_EQ(r->snapshot()->identityPort(0), nullptr);
  EXPECT_EQ(r->clientPassword(*r->get("default")), kOtherKey16);
}

TEST(UserRegistry2022Test, WithoutServerKeyAPortGetsAGeneratedIdentityKeyKeptInTheStore) {
  TempDir dir;
  std::string ipsk;
  {
    auto r = openRegistry(options(dir.path(), kAes256, ""));
    auto bob = r->create(newUser("bob", kAes256, 9300));
    ASSERT_TRUE(bob.ok()) << bob.status();
    auto carol = r->create(newUser("carol", kAes256));  // the shared port, no -k
    ASSERT_TRUE(carol.ok()) << carol.status();
    const std::vector<std::string> parts = absl::StrSplit(r->clientPassword(*bob), ':');
    ASSERT_EQ(parts.size(), 2u);
    ipsk = parts[0];
    EXPECT_EQ(decoded(ipsk).size(), 32u);
    EXPECT_EQ(parts[1], bob->password);
    EXPECT_NE(ipsk, bob->password);
    EXPECT_TRUE(sameBytes(r->snapshot()->identityPort(9300)->identityKey(), decoded(ipsk).bytes()));
    EXPECT_EQ(foundBy(*r, 9300, bob->password), "bob");
    EXPECT_EQ(foundBy(*r, 0, carol->password), "carol");
    EXPECT_EQ(foundBy(*r, 0, bob->password), "");              // each port its own users
    EXPECT_NE(r->clientPassword(*carol).substr(0, 44), ipsk);  // each port its own key
    // A user may not take a port's identity key as its own.
    NewUser copycat = newUser("dave", kAes256);
    copycat.password = r->clientPassword(*carol).substr(0, 44);
    expectStatus(r->create(copycat).status(), absl::StatusCode::kInvalidArgument,
                 "password: is the identity key of port 8388");
  }
  {
    auto r = openRegistry(options(dir.path(), kAes256, ""));  // the same key after a restart
    EXPECT_EQ(r->clientPassword(*r->get("bob")), absl::StrCat(ipsk, ":", r->get("bob")->password));
    ASSERT_TRUE(r->remove("bob").ok());
    EXPECT_EQ(r->snapshot()->identityPort(9300), nullptr);
  }
  auto loaded = decodeStore(readText(dir.file("users.json")));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->identity_keys.size(), 1u);  // bob's port's key went with him
  EXPECT_EQ(loaded->identity_keys[0].port, 0);
  EXPECT_EQ(loaded->identity_keys[0].method, kAes256);
}

TEST(UserRegistry2022Test, GivenUserKeysAreCheckedNamingTheField) {
  auto r = openRegistry(options("", kAes128, kServerKey16));
  NewUser bad = newUser("alice", kAes128);
  bad.password = "c2hvcnQ=";  // 5 bytes
  expectStatus(r->create(bad).status(), absl::StatusCode::kInvalidArgument,
               "password: decodes to 5 bytes but 2022-blake3-aes-128-gcm needs 16 (24 base64 "
               "characters");
  bad.password.clear();
  bad.key = "not base64!";
  expectStatus(r->create(bad).status(), absl::StatusCode::kInvalidArgument,
               "key: not valid base64");
  bad.key = absl::StrCat(kOtherKey16, ":", kOtherKey16);
  expectStatus(r->create(bad).status(), absl::StatusCode::kInvalidArgument,
               "key: a list of keys (iPSK:...:uPSK) where one key is expected");
  bad.key = kServerKey16;
  expectStatus(r->create(bad).status(), absl::StatusCode::kInvalidArgument,
               "key: user \"default\" of port 8388 has this key (it is the port's identity key");

  NewUser given = newUser("alice", kAes128);
  given.key = kOtherKey16;
  auto alice = r->create(given);
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->key, kOtherKey16);
  EXPECT_EQ(r->clientPassword(*alice), absl::StrCat(kServerKey16, ":", kOtherKey16));
  NewUser twin = newUser("bob", kAes128);
  twin.password = kOtherKey16;
  expectStatus(r->create(twin).status(), absl::StatusCode::kInvalidArgument,
               "password: user \"alice\" of port 8388 has this key");
  EXPECT_TRUE(r->create(newUser("bob", kAes128, 9500)).ok());
}

TEST(UserRegistry2022Test, RotationGivesANewKeyAndTheOldOneNamesNobody) {
  auto r = openRegistry(options("", kAes128, kServerKey16));
  auto alice = r->create(newUser("alice", kAes128));
  ASSERT_TRUE(alice.ok());
  const relay::UserTablePtr before = r->snapshot();
  UserUpdate rotate;
  rotate.password = "";
  auto rotated = r->update("alice", rotate);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_NE(rotated->password, alice->password);
  EXPECT_EQ(decoded(rotated->password).size(), 16u);
  EXPECT_EQ(foundBy(*r, 0, rotated->password), "alice");
  EXPECT_EQ(foundBy(*r, 0, alice->password), "");
  EXPECT_FALSE(r->snapshot()->keeps(*before->find("alice")));  // live sessions are cut

  UserUpdate disable;
  disable.enabled = false;
  ASSERT_TRUE(r->update("alice", disable).ok());
  EXPECT_EQ(foundBy(*r, 0, rotated->password), "");
  EXPECT_NE(r->snapshot()->identityPort(0), nullptr);  // still an identity port
}

TEST(UserRegistry2022Test, ConfiguredUsersAndA2022DefaultMethod) {
  // shadowsocks-rust's form: "password" is the iPSK, "users" have their uPSK.
  RegistryOptions o = options("", kAes128, kServerKey16);
  User cfg;
  cfg.name = "cfg";
  cfg.method = kAes128;
  cfg.password = kOtherKey16;
  cfg.source = UserSource::Config;
  o.configured_users.insert(o.configured_users.begin(), cfg);
  auto r = openRegistry(o);
  EXPECT_EQ(foundBy(*r, 0, kOtherKey16), "cfg");
  EXPECT_EQ(r->clientPassword(*r->get("cfg")), absl::StrCat(kServerKey16, ":", kOtherKey16));

  // The 2022 method as the API's default: users without a method get it.
  auto r2017 = openRegistry(options("", "aes-128-gcm", ""));
  ASSERT_TRUE(r2017->setDefaultMethod(kAes256).ok());
  auto plain = r2017->create(newUser("alice", ""));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->method, kAes256);
  EXPECT_EQ(decoded(plain->password).size(), 32u);
}

}  // namespace
}  // namespace shadowrelay::api::users
