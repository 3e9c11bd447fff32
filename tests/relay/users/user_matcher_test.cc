// SPDX-License-Identifier: Apache-2.0
// Trial decryption over the users of a port: the right user is found whatever its method, the
// per-IP hint and the recency order cut the trials, and tables swap without losing the order.
#include "relay/users/user_matcher.h"

#include <string>
#include <vector>

#include "crypto/aead_stream.h"
#include "gtest/gtest.h"
#include "tests/testing/test_users.h"

namespace shadowrelay::relay {
namespace {

using testing::makeTable;
using testing::makeUser;

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
  matcher.setTable(makeTable(fourUsers()));
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
  matcher.setTable(makeTable(fourUsers()));
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
  for (int i = 0; i < 50; ++i)
    many.push_back(makeUser("u" + std::to_string(100 + i), "aes-128-gcm"));
  UserMatcher matcher;
  matcher.setTable(makeTable(std::move(many)));
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

// A start that arrives in small pieces (issue 15 §1): each key is tried once on the stream, not
// once per read; users skipped for a short input are no trials.
TEST(UserMatcher, AStreamTriesEachKeyOnceWhateverItsPieces) {
  std::vector<RelayUser> users;
  for (int i = 0; i < 40; ++i)
    users.push_back(makeUser("short" + std::to_string(10 + i), "aes-128-gcm"));  // 16-byte salt
  users.push_back(makeUser("zed", "aes-256-gcm"));                                // 32-byte salt
  UserMatcher matcher;
  matcher.setTable(makeTable(std::move(users)));
  const auto start = streamStart(*matcher.table()->find("zed"));
  UserMatcher::StreamTrials tried;
  RelayUserPtr found;
  const uint64_t before = matcher.trials();
  size_t have = 1;
  for (; have < start.size(); ++have) {
    const auto outcome = matcher.matchStream(0, "x", std::span(start).first(have), &found, &tried);
    if (outcome == UserMatcher::Outcome::Matched) break;
    ASSERT_EQ(outcome, UserMatcher::Outcome::NeedMore) << have;
    // Nobody can be tried before 34 bytes; from then on the 40 short-salt keys, once.
    EXPECT_EQ(matcher.trials() - before, have < 34 ? 0u : 40u) << have;
  }
  EXPECT_EQ(have, 50u);  // zed's salt and length header
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->name, "zed");
  EXPECT_EQ(matcher.trials() - before, 41u);

  // Without the stream's record every read of 34..49 bytes tries the 40 keys again.
  const uint64_t again = matcher.trials();
  for (size_t n = 34; n < 50; ++n) matcher.matchStream(0, "y", std::span(start).first(n), &found);
  EXPECT_EQ(matcher.trials() - again, 16u * 40u);
}

TEST(UserMatcher, ANewTableStartsTheStreamsTrialsOver) {
  std::vector<RelayUser> users;
  users.push_back(makeUser("ann", "aes-128-gcm"));
  users.push_back(makeUser("zed", "aes-256-gcm"));
  UserMatcher matcher;
  matcher.setTable(makeTable(users, /*generation=*/1));
  RelayUser late = makeUser("late", "aes-128-gcm");
  const auto start = streamStart(late);
  UserMatcher::StreamTrials tried;
  RelayUserPtr found;
  ASSERT_EQ(matcher.matchStream(0, "x", std::span(start).first(40), &found, &tried),
            UserMatcher::Outcome::NeedMore);
  // "late" joins the port: the next read tries it although 40 bytes were tried before.
  users.push_back(std::move(late));
  matcher.setTable(makeTable(std::move(users), /*generation=*/2));
  ASSERT_EQ(matcher.matchStream(0, "x", std::span(start).first(41), &found, &tried),
            UserMatcher::Outcome::Matched);
  EXPECT_EQ(found->name, "late");
}

TEST(UserMatcher, DisabledUsersAreNotCandidatesAndSwapsKeepTheOrder) {
  UserMatcher matcher;
  UserTablePtr first = makeTable(fourUsers());
  matcher.setTable(first);
  RelayUserPtr found;
  const auto carol = streamStart(*first->find("carol"));
  ASSERT_EQ(matcher.matchStream(0, "ip", carol, &found), UserMatcher::Outcome::Matched);
  const auto live = first->find("carol")->live;
  live->tcp_sessions = 3;

  // alice disabled, bob removed: carol keeps her place and her live counters.
  std::vector<RelayUser> users;
  RelayUser disabled = makeUser("alice", "aes-256-gcm");
  disabled.enabled = false;
  users.push_back(std::move(disabled));
  users.push_back(makeUser("carol", "aes-128-gcm"));
  UserTablePtr second = makeTable(std::move(users), 2, first.get());
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

// matchWindow (UDP, issue 15 §1): at most max_trials keys from `first`, wrapping, skipping the
// user the caller tried itself, and where the next window starts.
TEST(UserMatcher, MatchWindowTriesAtMostItsWindowAndSaysWhereTheNextStarts) {
  std::vector<RelayUser> users;
  for (const char* name : {"u0", "u1", "u2", "u3", "u4"}) users.push_back(makeUser(name));
  UserMatcher matcher;
  matcher.setTable(makeTable(std::move(users)));
  std::vector<std::string> tried_names;
  auto wants = [&](const char* name) {
    return [&tried_names, name](const RelayUser& user) {
      tried_names.push_back(user.name);
      return user.name == name;
    };
  };
  size_t tried = 0;
  size_t next = 0;
  EXPECT_EQ(matcher.matchWindow(0, "ip", 0, 2, nullptr, wants("u3"), &tried, &next), nullptr);
  EXPECT_EQ(tried, 2u);
  EXPECT_EQ(next, 2u);
  EXPECT_EQ(tried_names, (std::vector<std::string>{"u0", "u1"}));
  // Wrapping, and the skipped user is not tried (nor counted).
  tried_names.clear();
  const RelayUser* u0 = matcher.table()->find("u0");
  EXPECT_EQ(matcher.matchWindow(0, "ip", 4, 3, u0, wants("u9"), &tried, &next), nullptr);
  EXPECT_EQ(tried_names, (std::vector<std::string>{"u4", "u1"}));
  EXPECT_EQ(tried, 2u);
  EXPECT_EQ(next, 2u);
  // A match moves to the front and becomes the IP's hint for match().
  tried_names.clear();
  RelayUserPtr found = matcher.matchWindow(0, "ip", 2, 2, nullptr, wants("u3"), &tried, &next);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->name, "u3");
  EXPECT_EQ(next, 0u);
  tried_names.clear();
  EXPECT_NE(matcher.match(0, "ip", wants("u3")), nullptr);
  EXPECT_EQ(tried_names, (std::vector<std::string>{"u3"}));
  // A window larger than the port tries each user once.
  tried_names.clear();
  EXPECT_EQ(matcher.matchWindow(0, "other", 1, 64, nullptr, wants("none"), &tried, &next),
            nullptr);
  EXPECT_EQ(tried, 5u);
}

}  // namespace
}  // namespace shadowrelay::relay
