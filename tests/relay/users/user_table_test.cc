// SPDX-License-Identifier: Apache-2.0
// The immutable user table: lookups, the candidates of a port, which live sessions a new table
// keeps, and the per-user live counts carried from table to table.
#include "relay/users/user_table.h"

#include <string>
#include <vector>

#include "crypto/key_derivation.h"
#include "gtest/gtest.h"
#include "tests/testing/test_users.h"

namespace shadowrelay::relay {
namespace {

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

}  // namespace
}  // namespace shadowrelay::relay
