// SPDX-License-Identifier: Apache-2.0
// Trial decryption over the users of a port: the right user is found whatever its method, the
// per-IP hint and the recency order cut the trials, and tables swap without losing the order.
#include "relay/users/user_matcher.h"

#include <string>
#include <vector>

#include "crypto/aead_stream.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

RelayUser makeUser(const std::string& name, const char* method_name, uint16_t port = 0,
                   bool enabled = true) {
  RelayUser user;
  user.name = name;
  user.method = *crypto::findMethod(method_name);
  user.provider = &crypto::opensslProvider();
  user.key = crypto::evpBytesToKey("password-of-" + name, user.method->key_size);
  user.port = port;
  user.enabled = enabled;
  return user;
}

/// The first bytes a client of `user` sends: salt and a sealed chunk of "hello".
std::vector<uint8_t> streamStart(const RelayUser& user) {
  crypto::AeadStreamEncoder encoder(*user.method, *user.provider, user.key.bytes());
  const std::string hello = "hello";
  std::vector<uint8_t> out(256);
  crypto::CodecProgress progress;
  EXPECT_TRUE(encoder.encode({reinterpret_cast<const uint8_t*>(hello.data()), hello.size()}, out,
                             &progress));
  out.resize(progress.produced);
  return out;
}

UserTablePtr table(uint64_t generation, std::vector<RelayUser> users,
                   const UserTable* previous = nullptr) {
  return std::make_shared<const UserTable>(generation, std::move(users), previous);
}

std::vector<RelayUser> fourUsers() {
  std::vector<RelayUser> users;
  users.push_back(makeUser("alice", "aes-256-gcm"));
  users.push_back(makeUser("bob", "chacha20-ietf-poly1305"));
  users.push_back(makeUser("carol", "aes-128-gcm"));  // 16-byte salt
  users.push_back(makeUser("dave", "aes-256-gcm", /*port=*/9001));
  return users;
}

TEST(UserMatcher, FindsEachUserOfThePortWhateverItsMethod) {
  UserMatcher matcher;
  matcher.setTable(table(1, fourUsers()));
  ASSERT_EQ(matcher.candidates(0).size(), 3u);
  for (const char* name : {"alice", "bob", "carol"}) {
    const RelayUser* user = matcher.table()->find(name);
    RelayUserPtr found;
    EXPECT_EQ(matcher.matchStream(0, "ip-" + std::string(name), streamStart(*user), &found),
              UserMatcher::Outcome::Matched)
        << name;
    ASSERT_NE(found, nullptr);
    EXPECT_EQ(found->name, name);
  }
  // dave is on his own port, not on the shared one.
  RelayUserPtr found;
  const auto dave = streamStart(*matcher.table()->find("dave"));
  EXPECT_EQ(matcher.matchStream(0, "x", dave, &found), UserMatcher::Outcome::NoMatch);
  EXPECT_EQ(matcher.matchStream(9001, "x", dave, &found), UserMatcher::Outcome::Matched);
  EXPECT_EQ(found->name, "dave");
}

TEST(UserMatcher, UnknownKeyIsNoMatchAndShortInputNeedsMore) {
  UserMatcher matcher;
  matcher.setTable(table(1, fourUsers()));
  RelayUser stranger = makeUser("mallory", "aes-256-gcm");
  RelayUserPtr found;
  EXPECT_EQ(matcher.matchStream(0, "x", streamStart(stranger), &found),
            UserMatcher::Outcome::NoMatch);
  EXPECT_EQ(found, nullptr);
  // 20 bytes: enough for nobody (carol needs 16 + 18).
  const auto alice = streamStart(*matcher.table()->find("alice"));
  EXPECT_EQ(matcher.matchStream(0, "x", std::span(alice).first(20), &found),
            UserMatcher::Outcome::NeedMore);
  // 40 bytes: carol can be tried (and fails), alice and bob need 50.
  EXPECT_EQ(matcher.matchStream(0, "x", std::span(alice).first(40), &found),
            UserMatcher::Outcome::NeedMore);
  EXPECT_EQ(matcher.matchStream(0, "x", std::span(alice).first(50), &found),
            UserMatcher::Outcome::Matched);
}

TEST(UserMatcher, ClientHintAndRecencyCutTheTrials) {
  std::vector<RelayUser> many;
  for (int i = 0; i < 50; ++i) many.push_back(makeUser("u" + std::to_string(100 + i), "aes-128-gcm"));
  UserMatcher matcher;
  matcher.setTable(table(1, std::move(many)));
  const auto last = streamStart(*matcher.table()->find("u149"));  // last in name order
  RelayUserPtr found;
  uint64_t before = matcher.trials();
  ASSERT_EQ(matcher.matchStream(0, "client-a", last, &found), UserMatcher::Outcome::Matched);
  EXPECT_EQ(matcher.trials() - before, 50u);  // every user tried once
  // The same client again: its hint opens it at the first try.
  before = matcher.trials();
  ASSERT_EQ(matcher.matchStream(0, "client-a", streamStart(*found), &found),
            UserMatcher::Outcome::Matched);
  EXPECT_EQ(matcher.trials() - before, 1u);
  // Another client of the same user: most recently matched first, one try.
  before = matcher.trials();
  ASSERT_EQ(matcher.matchStream(0, "client-b", streamStart(*found), &found),
            UserMatcher::Outcome::Matched);
  EXPECT_EQ(matcher.trials() - before, 1u);
  EXPECT_EQ(found->name, "u149");
}

TEST(UserMatcher, DisabledUsersAreNotCandidatesAndSwapsKeepTheOrder) {
  UserMatcher matcher;
  UserTablePtr first = table(1, fourUsers());
  matcher.setTable(first);
  RelayUserPtr found;
  const auto carol = streamStart(*first->find("carol"));
  ASSERT_EQ(matcher.matchStream(0, "ip", carol, &found), UserMatcher::Outcome::Matched);
  const auto live = first->find("carol")->live;
  live->tcp_sessions = 3;

  // alice disabled, bob removed: carol keeps her place and her live counters.
  std::vector<RelayUser> users;
  users.push_back(makeUser("alice", "aes-256-gcm", 0, /*enabled=*/false));
  users.push_back(makeUser("carol", "aes-128-gcm"));
  UserTablePtr second = table(2, std::move(users), first.get());
  matcher.setTable(second);
  ASSERT_EQ(matcher.candidates(0).size(), 1u);
  EXPECT_EQ(second->find("carol")->live, live);
  EXPECT_EQ(second->find("carol")->live->tcp_sessions.load(), 3u);
  const uint64_t before = matcher.trials();
  EXPECT_EQ(matcher.matchStream(0, "other-ip", carol, &found), UserMatcher::Outcome::Matched);
  EXPECT_EQ(matcher.trials() - before, 1u);
  EXPECT_EQ(matcher.matchStream(0, "ip", streamStart(*first->find("alice")), &found),
            UserMatcher::Outcome::NoMatch);
}

TEST(RelayUser, LimitsAndKeys) {
  RelayUser a = makeUser("a", "aes-256-gcm");
  RelayUser b = makeUser("a", "aes-256-gcm");
  EXPECT_TRUE(a.sameKey(b));
  RelayUser c = makeUser("c", "aes-256-gcm");
  EXPECT_FALSE(a.sameKey(c));
  a.max_connections = 2;
  EXPECT_TRUE(a.admitsNewSession(1));
  EXPECT_FALSE(a.admitsNewSession(2));
  a.max_connections = 0;
  EXPECT_TRUE(a.admitsNewSession(1000));
  a.quota_exceeded = true;
  EXPECT_FALSE(a.admitsNewSession(0));
}

}  // namespace
}  // namespace shadowrelay::relay
