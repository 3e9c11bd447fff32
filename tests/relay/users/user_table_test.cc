// SPDX-License-Identifier: Apache-2.0
// The immutable user table: lookups, the candidates of a port, which live sessions a new table
// keeps, the per-user live counts carried from table to table, and the SIP023 lookup of a 2022
// port (users by the hash of their key).
#include "relay/users/user_table.h"

#include <string>
#include <vector>

#include "crypto/key_derivation.h"
#include "gtest/gtest.h"
#include "tests/testing/test_users.h"

namespace shadowrelay::relay {
namespace {

using testing::makeIdentityKey;
using testing::makeTable;
using testing::makeUser;

std::vector<std::string> names(std::span<const RelayUserPtr> users) {
  std::vector<std::string> out;
  for (const RelayUserPtr& user : users) out.push_back(user->name);
  return out;
}

// A table with a user of every kind: shared port, dedicated ports, disabled.
UserTablePtr mixedTable() {
  std::vector<RelayUser> users;
  users.push_back(makeUser("carol"));
  users.push_back(makeUser("alice"));
  users.push_back(makeUser("dave", "aes-256-gcm", /*port=*/9001));
  users.push_back(makeUser("bob", "chacha20-ietf-poly1305"));
  RelayUser erin = makeUser("erin");
  erin.enabled = false;
  users.push_back(std::move(erin));
  RelayUser frank = makeUser("frank", "aes-128-gcm", /*port=*/9500);
  frank.enabled = false;  // its port has no enabled user
  users.push_back(std::move(frank));
  users.push_back(makeUser("gina", "aes-128-gcm", /*port=*/8443));
  users.push_back(makeUser("hank", "aes-128-gcm", /*port=*/9001));
  return makeTable(std::move(users), /*generation=*/7);
}

TEST(UserTableTest, FindsUsersByNameOnly) {
  const UserTablePtr table = mixedTable();
  EXPECT_EQ(table->generation(), 7u);
  EXPECT_EQ(table->size(), 8u);
  const RelayUser* alice = table->find("alice");
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(table->findShared("alice").get(), alice);
  // Disabled users are found by name (their sessions are judged by keeps()).
  ASSERT_NE(table->find("erin"), nullptr);
  EXPECT_FALSE(table->find("erin")->enabled);
  EXPECT_EQ(table->find("nobody"), nullptr);
  EXPECT_EQ(table->findShared("nobody"), nullptr);
  EXPECT_EQ(table->find("Alice"), nullptr);  // names are case-sensitive
}

TEST(UserTableTest, OnPortListsTheEnabledUsersInNameOrder) {
  const UserTablePtr table = mixedTable();
  EXPECT_EQ(names(table->onPort(0)), (std::vector<std::string>{"alice", "bob", "carol"}));
  EXPECT_EQ(names(table->onPort(9001)), (std::vector<std::string>{"dave", "hank"}));
  EXPECT_EQ(names(table->onPort(8443)), (std::vector<std::string>{"gina"}));
  EXPECT_TRUE(table->onPort(9500).empty());  // frank is disabled
  EXPECT_TRUE(table->onPort(1).empty());
}

TEST(UserTableTest, DedicatedPortsAreDistinctAscendingAndEnabledOnly) {
  EXPECT_EQ(mixedTable()->dedicatedPorts(), (std::vector<uint16_t>{8443, 9001}));
  EXPECT_TRUE(makeTable({makeUser("a"), makeUser("b")})->dedicatedPorts().empty());
}

TEST(UserTableTest, KeepsAUserWithTheSameKeyAndPort) {
  const UserTablePtr old_table =
      makeTable({makeUser("alice"), makeUser("dave", "aes-256-gcm", 9001)});
  // Rebuilt from the same settings: new objects, same method, key and port.
  const UserTablePtr new_table =
      makeTable({makeUser("alice"), makeUser("dave", "aes-256-gcm", 9001)}, 2, old_table.get());
  EXPECT_TRUE(new_table->keeps(*old_table->find("alice")));
  EXPECT_TRUE(new_table->keeps(*old_table->find("dave")));
}

TEST(UserTableTest, DoesNotKeepAUserWithANewKeyOrMethod) {
  const UserTablePtr old_table = makeTable({makeUser("alice", "aes-256-gcm")});
  const RelayUser& alice = *old_table->find("alice");

  RelayUser rotated = makeUser("alice", "aes-256-gcm");
  rotated.key = crypto::evpBytesToKey("a new password", rotated.method->key_size);
  EXPECT_FALSE(makeTable({std::move(rotated)})->keeps(alice));

  // The same 32 key bytes under another 32-byte method is another key.
  RelayUser other_method = makeUser("alice", "chacha20-ietf-poly1305");
  ASSERT_EQ(other_method.key.size(), alice.key.size());
  ASSERT_TRUE(std::equal(other_method.key.bytes().begin(), other_method.key.bytes().end(),
                         alice.key.bytes().begin()));
  EXPECT_FALSE(makeTable({std::move(other_method)})->keeps(alice));
}

TEST(UserTableTest, DoesNotKeepADeletedDisabledOverQuotaOrMovedUser) {
  const UserTablePtr old_table = makeTable({makeUser("alice")});
  const RelayUser& alice = *old_table->find("alice");

  EXPECT_FALSE(makeTable({makeUser("bob")})->keeps(alice));

  RelayUser disabled = makeUser("alice");
  disabled.enabled = false;
  EXPECT_FALSE(makeTable({std::move(disabled)})->keeps(alice));

  RelayUser over_quota = makeUser("alice");
  over_quota.quota_exceeded = true;
  EXPECT_FALSE(makeTable({std::move(over_quota)})->keeps(alice));

  RelayUser expired = makeUser("alice");
  expired.expired = true;
  const UserTablePtr with_expired = makeTable({std::move(expired)});
  EXPECT_FALSE(with_expired->keeps(alice));
  EXPECT_EQ(with_expired->onPort(0).size(), 1u);  // still identified, then refused

  EXPECT_FALSE(makeTable({makeUser("alice", "aes-128-gcm", /*port=*/9001)})->keeps(alice));

  // A limit change alone keeps the user's sessions.
  RelayUser limited = makeUser("alice");
  limited.max_connections = 1;
  EXPECT_TRUE(makeTable({std::move(limited)})->keeps(alice));
}

TEST(UserTableTest, LiveCountsAreCarriedToTheNextTableByName) {
  const UserTablePtr first = makeTable({makeUser("alice"), makeUser("bob")});
  first->find("alice")->live->tcp_sessions = 2;
  first->find("bob")->live->tcp_sessions = 5;

  const UserTablePtr second = makeTable({makeUser("alice"), makeUser("carol")}, 2, first.get());
  EXPECT_EQ(second->find("alice")->live, first->find("alice")->live);
  EXPECT_EQ(second->find("alice")->live->tcp_sessions.load(), 2u);
  EXPECT_EQ(second->find("carol")->live->tcp_sessions.load(), 0u);

  // bob left with `second`; when he comes back his count starts again.
  const UserTablePtr third = makeTable({makeUser("bob")}, 3, second.get());
  EXPECT_NE(third->find("bob")->live, first->find("bob")->live);
  EXPECT_EQ(third->find("bob")->live->tcp_sessions.load(), 0u);

  // Without a previous table nothing is carried.
  const UserTablePtr fresh = makeTable({makeUser("alice")}, 4, nullptr);
  EXPECT_EQ(fresh->find("alice")->live->tcp_sessions.load(), 0u);
}

constexpr const char* kAes128 = "2022-blake3-aes-128-gcm";

TEST(UserTableTest, IdentityPortFindsEachUserByTheHashOfItsKey) {
  // The shared port's iPSK is the -k user's key ("default"); dave's port has an iPSK of its own.
  RelayUser holder = makeUser("default", kAes128);
  const crypto::MasterKey ipsk = holder.key;
  const crypto::MasterKey dave_ipsk = makeUser("dave-port", kAes128).key;
  std::vector<RelayUser> users;
  users.push_back(std::move(holder));
  users.push_back(makeUser("alice", kAes128));
  users.push_back(makeUser("bob", kAes128));
  RelayUser carol = makeUser("carol", kAes128);
  carol.enabled = false;
  users.push_back(std::move(carol));
  RelayUser over = makeUser("olga", kAes128);
  over.quota_exceeded = true;  // identified, then refused by the session
  users.push_back(std::move(over));
  users.push_back(makeUser("erin", "2022-blake3-aes-256-gcm"));  // not the port's method
  users.push_back(makeUser("dave", kAes128, /*port=*/9001));
  const UserTablePtr table =
      makeTable(std::move(users), 1, nullptr,
                {makeIdentityKey(0, kAes128, ipsk), makeIdentityKey(9001, kAes128, dave_ipsk)});

  const PortIdentity* shared = table->identityPort(0);
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ(shared->port(), 0);
  EXPECT_EQ(shared->method().name, kAes128);
  EXPECT_TRUE(std::equal(shared->identityKey().begin(), shared->identityKey().end(),
                         ipsk.bytes().begin(), ipsk.bytes().end()));
  EXPECT_EQ(shared->size(), 3u);  // alice, bob, olga
  for (const char* name : {"alice", "bob", "olga"}) {
    const RelayUser* user = table->find(name);
    EXPECT_EQ(shared->user(crypto::userHash(user->key.bytes())).get(), user) << name;
    const std::span<const uint8_t> key = shared->userKey(crypto::userHash(user->key.bytes()));
    EXPECT_EQ(key.data(), user->key.bytes().data()) << name;
  }
  // The iPSK names nobody: every client of the port holds it. Nor does a disabled user, a user
  // of another method, a user of another port or an unknown key.
  for (const char* name : {"default", "carol", "erin", "dave"}) {
    EXPECT_EQ(shared->user(crypto::userHash(table->find(name)->key.bytes())), nullptr) << name;
    EXPECT_TRUE(shared->userKey(crypto::userHash(table->find(name)->key.bytes())).empty());
  }
  EXPECT_EQ(shared->user(crypto::UserHash{}), nullptr);
  // The -k user is no candidate of its port any more; the others are, as on any port.
  EXPECT_EQ(names(table->onPort(0)), (std::vector<std::string>{"alice", "bob", "erin", "olga"}));
  EXPECT_NE(table->find("default"), nullptr);

  const PortIdentity* own = table->identityPort(9001);
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->user(crypto::userHash(table->find("dave")->key.bytes())).get(),
            table->find("dave"));
  EXPECT_EQ(table->dedicatedPorts(), (std::vector<uint16_t>{9001}));
  EXPECT_EQ(table->identityPort(9002), nullptr);
  EXPECT_EQ(makeTable({makeUser("alice", kAes128)})->identityPort(0), nullptr);  // one PSK
}

TEST(UserTableTest, IdentityPortOfTenThousandUsersFindsEveryOne) {
  std::vector<RelayUser> users;
  for (int i = 0; i < 10000; ++i) users.push_back(makeUser("u" + std::to_string(i), kAes128));
  const UserTablePtr table = makeTable(std::move(users), 1, nullptr,
                                       {makeIdentityKey(0, kAes128, makeUser("k", kAes128).key)});
  const PortIdentity* port = table->identityPort(0);
  ASSERT_NE(port, nullptr);
  ASSERT_EQ(port->size(), 10000u);
  for (int i = 0; i < 10000; i += 97) {
    const RelayUser* user = table->find("u" + std::to_string(i));
    ASSERT_EQ(port->user(crypto::userHash(user->key.bytes())).get(), user);
  }
}

TEST(UserTableTest, TwoUsersWithOneKeyOnAnIdentityPortKeepTheFirstByName) {
  RelayUser b = makeUser("b", kAes128);
  RelayUser a = makeUser("a", kAes128);
  a.key = b.key;
  std::vector<RelayUser> users;
  users.push_back(std::move(b));
  users.push_back(std::move(a));
  const UserTablePtr table = makeTable(std::move(users), 1, nullptr,
                                       {makeIdentityKey(0, kAes128, makeUser("k", kAes128).key)});
  EXPECT_EQ(table->identityPort(0)->size(), 1u);
  EXPECT_EQ(table->identityPort(0)->user(crypto::userHash(table->find("b")->key.bytes()))->name,
            "a");
}

}  // namespace
}  // namespace shadowrelay::relay
