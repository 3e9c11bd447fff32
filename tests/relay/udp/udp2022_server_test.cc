// SPDX-License-Identifier: Apache-2.0
// Udp2022Server on a loop driven by the test, for each 2022 method: client packets sealed by the
// crypto layer's Udp2022Sealer (checked against the §2.8 vectors in tests/crypto), replies opened
// by its Udp2022Opener, a loopback UDP echo (or a bare socket) as the target.
#include "relay/udp/udp2022_server.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead2022.h"
#include "crypto/aead2022_udp.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/udp_stats.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/methods2022.h"
#include "tests/testing/reference_client.h"
#include "tests/testing/run_loop.h"
#include "tests/testing/test_users.h"
#include "tests/testing/test_worker_context.h"
#include "tests/testing/udp_echo.h"

// In the tests' namespace: the loopback and loop helpers unqualified.
namespace shadowrelay::relay::testing {
namespace {

using shadowrelay::testing::bytesOf;
using std::chrono::seconds;

class Udp2022ServerTest : public ::testing::TestWithParam<const char*> {
 protected:
  Udp2022ServerTest() {
    env_.config.allow_private = true;        // the targets are on loopback
    env_.config.nameserver = "127.0.0.1:1";  // never asked: every target is a literal
    env_.udp_timeout = seconds(60);
    method_ = *crypto::findAnyMethod(GetParam());
    psk_ = shadowrelay::testing::sequentialKey(method_->key_size, 0);
  }

  /// `identity_key`: the port's users send identity headers (SIP023) under this iPSK.
  void start(size_t max_associations = 16, const crypto::MasterKey* identity_key = nullptr) {
    context_ = std::make_unique<TestWorkerContext>(loop_, env_);
    ASSERT_TRUE(context_->init().ok());
    RelayUser user;
    user.name = "alice";
    user.method = method_;
    user.provider = &crypto::opensslProvider();
    user.key = psk_;
    std::vector<IdentityKey> identity;
    if (identity_key != nullptr) {
      identity.push_back(makeIdentityKey(0, method_->name.data(), *identity_key));
    }
    context_->setUsers(makeTable({std::move(user)}, 1, nullptr, std::move(identity)));
    Fd socket = bindUdpLoopback();
    server_address_ = loopbackAddress(portOf(socket.get()));
    server_ = std::make_unique<Udp2022Server>(*context_, std::move(socket), max_associations);
  }

  /// A client packet of `session` to `target`, sealed with `key` (default: the port's PSK).
  std::vector<uint8_t> packet(const crypto::SessionId& session, uint64_t packet_id, uint16_t target,
                              const std::string& payload, int64_t skew = 0,
                              const crypto::MasterKey* key = nullptr) {
    crypto::Udp2022Sealer sealer(*method_, crypto::opensslProvider(),
                                 std::span<const crypto::MasterKey>(key ? key : &psk_, 1));
    crypto::PacketHeader2022 header;
    header.type = crypto::kClientHeaderType;
    header.session_id = session;
    header.packet_id = packet_id;
    header.timestamp = static_cast<uint64_t>(static_cast<int64_t>(loop_.unixSeconds()) + skew);
    header.address = loopbackTarget(target);
    std::vector<uint8_t> out(sealer.packetSize(header, payload.size()));
    EXPECT_EQ(sealer.seal(header, bytesOf(payload), out), out.size());
    return out;
  }

  /// The next reply at `client`, opened and checked against the spec's rules for a server
  /// packet (the opener checks type 1 and the timestamp).
  crypto::OpenedPacket2022 reply(const Fd& client, std::vector<uint8_t>* holder) {
    SocketAddress from;
    *holder = awaitDatagram(loop_, client.get(), &from);
    EXPECT_EQ(from.port(), server_address_.port());
    crypto::Udp2022Opener opener(*method_, crypto::opensslProvider(), psk_.bytes(),
                                 crypto::kServerHeaderType);
    std::vector<uint8_t> plain(holder->size());
    crypto::OpenedPacket2022 opened = opener.open(*holder, plain, loop_.unixSeconds());
    EXPECT_EQ(opened.status, crypto::Status2022::Ok) << crypto::statusName(opened.status);
    *holder = std::vector<uint8_t>(opened.payload.begin(), opened.payload.end());
    return opened;
  }

  const UdpStats& stats() const { return server_->stats(); }

  RelayEnv env_;
  EventLoop loop_;
  UdpEcho echo_{loop_};
  const crypto::MethodInfo* method_ = nullptr;
  crypto::MasterKey psk_;
  std::unique_ptr<TestWorkerContext> context_;
  SocketAddress server_address_;
  std::unique_ptr<Udp2022Server> server_;
  const crypto::SessionId session_{1, 2, 3, 4, 5, 6, 7, 8};
};

INSTANTIATE_TEST_SUITE_P(Methods, Udp2022ServerTest, shadowrelay::testing::methods2022(),
                         shadowrelay::testing::methodParamName);

TEST_P(Udp2022ServerTest, AnswersUnderItsOwnSessionAndCounter) {
  start();
  Fd client = bindUdpLoopback();
  crypto::SessionId server_session{};
  for (uint64_t id = 0; id < 3; ++id) {
    const std::string payload = "ping " + std::to_string(id);
    ASSERT_TRUE(
        sendDatagram(client.get(), packet(session_, id, echo_.port(), payload), server_address_));
    std::vector<uint8_t> got;
    const crypto::OpenedPacket2022 opened = reply(client, &got);
    EXPECT_EQ(got, bytesOf(payload));
    EXPECT_EQ(opened.header.type, crypto::kServerHeaderType);
    EXPECT_EQ(opened.header.client_session_id, session_);
    EXPECT_NE(opened.header.session_id, session_);
    EXPECT_EQ(opened.header.packet_id, id);
    EXPECT_EQ(opened.header.address, loopbackTarget(echo_.port()));
    if (id == 0) server_session = opened.header.session_id;
    EXPECT_EQ(opened.header.session_id, server_session);
  }
  EXPECT_EQ(echo_.received().size(), 3u);
  EXPECT_EQ(stats().packets_in, 3u);
  EXPECT_EQ(stats().packets_out, 3u);
  EXPECT_EQ(stats().associations, 1u);
  const UserTraffic& traffic = context_->sample().users.at("alice");
  EXPECT_EQ(traffic.udp_packets_up, 3u);
  EXPECT_EQ(traffic.udp_packets_down, 3u);

  // Another client session: another association, another server session.
  ASSERT_TRUE(sendDatagram(client.get(), packet({9, 9, 9, 9, 9, 9, 9, 9}, 0, echo_.port(), "b"),
                           server_address_));
  std::vector<uint8_t> got;
  const crypto::OpenedPacket2022 other = reply(client, &got);
  EXPECT_NE(other.header.session_id, server_session);
  EXPECT_EQ(other.header.packet_id, 0u);
  EXPECT_EQ(server_->associationCount(), 2u);
}

TEST_P(Udp2022ServerTest, ASessionThatMovesKeepsItsAssociation) {
  start();
  Fd a = bindUdpLoopback();
  Fd b = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(a.get(), packet(session_, 0, echo_.port(), "from a"), server_address_));
  std::vector<uint8_t> got;
  const crypto::OpenedPacket2022 first = reply(a, &got);
  const SocketAddress outbound = echo_.lastSender();
  ASSERT_TRUE(sendDatagram(b.get(), packet(session_, 1, echo_.port(), "from b"), server_address_));
  const crypto::OpenedPacket2022 second = reply(b, &got);
  EXPECT_EQ(got, bytesOf("from b"));
  EXPECT_EQ(second.header.session_id, first.header.session_id);
  EXPECT_EQ(second.header.packet_id, 1u);
  EXPECT_EQ(echo_.lastSender().port(), outbound.port());  // the same outbound socket
  runIterations(loop_, kSettleIterations);
  EXPECT_FALSE(datagramWaiting(a.get()));
  EXPECT_EQ(stats().associations, 1u);
  EXPECT_EQ(server_->associationCount(), 1u);
}

TEST_P(Udp2022ServerTest, AReplayFromElsewhereIsDroppedAndMovesNothing) {
  start();
  Fd target = bindUdpLoopback();  // a target that answers when the test says so
  Fd a = bindUdpLoopback();
  Fd b = bindUdpLoopback();
  const std::vector<uint8_t> first = packet(session_, 5, portOf(target.get()), "five");
  ASSERT_TRUE(sendDatagram(a.get(), first, server_address_));
  SocketAddress outbound;
  EXPECT_EQ(awaitDatagram(loop_, target.get(), &outbound), bytesOf("five"));
  // The same bytes, and the same packet ID sealed anew, from b: both replays.
  ASSERT_TRUE(sendDatagram(b.get(), first, server_address_));
  ASSERT_TRUE(
      sendDatagram(b.get(), packet(session_, 5, portOf(target.get()), "again"), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_replayed_packet == 2; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_FALSE(datagramWaiting(target.get()));
  // What the target says now still goes to a, the last address that sent a valid packet.
  ASSERT_TRUE(sendDatagram(target.get(), bytesOf("late"), outbound));
  std::vector<uint8_t> got;
  reply(a, &got);
  EXPECT_EQ(got, bytesOf("late"));
  EXPECT_FALSE(datagramWaiting(b.get()));
  // An older ID inside the window is new.
  ASSERT_TRUE(
      sendDatagram(a.get(), packet(session_, 2, portOf(target.get()), "two"), server_address_));
  EXPECT_EQ(awaitDatagram(loop_, target.get()), bytesOf("two"));
  EXPECT_EQ(stats().packets_in, 2u);
}

TEST_P(Udp2022ServerTest, StaleWrongKeyAndJunkAreDroppedUnansweredAndMoveNoWindow) {
  start();
  Fd client = bindUdpLoopback();
  const crypto::MasterKey wrong = shadowrelay::testing::sequentialKey(method_->key_size, 0x80);
  ASSERT_TRUE(
      sendDatagram(client.get(), packet(session_, 0, echo_.port(), "old", -120), server_address_));
  ASSERT_TRUE(
      sendDatagram(client.get(), packet(session_, 1, echo_.port(), "new", 120), server_address_));
  ASSERT_TRUE(sendDatagram(client.get(), packet(session_, 2, echo_.port(), "x", 0, &wrong),
                           server_address_));
  ASSERT_TRUE(sendDatagram(client.get(), std::vector<uint8_t>(10, 0x42), server_address_));
  ASSERT_TRUE(sendDatagram(client.get(), std::vector<uint8_t>(200, 0x42), server_address_));
  ASSERT_TRUE(
      runUntil(loop_, [&] { return stats().dropped_stale == 2 && stats().dropped_open == 3; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_TRUE(echo_.received().empty());
  EXPECT_FALSE(datagramWaiting(client.get()));
  EXPECT_EQ(stats().associations, 0u);
  // None of them moved a window: their packet IDs are new.
  for (uint64_t id = 0; id < 3; ++id) {
    ASSERT_TRUE(
        sendDatagram(client.get(), packet(session_, id, echo_.port(), "ok"), server_address_));
    std::vector<uint8_t> got;
    reply(client, &got);
  }
  EXPECT_EQ(stats().packets_in, 3u);
}

TEST_P(Udp2022ServerTest, AFullTableEvictsTheLeastRecentSession) {
  start(/*max_associations=*/2);
  Fd client = bindUdpLoopback();
  for (uint8_t s = 1; s <= 3; ++s) {
    ASSERT_TRUE(sendDatagram(client.get(), packet({s, s, s, s, s, s, s, s}, 0, echo_.port(), "x"),
                             server_address_));
    std::vector<uint8_t> got;
    reply(client, &got);
  }
  EXPECT_EQ(stats().associations, 3u);
  EXPECT_EQ(stats().evictions, 1u);
  EXPECT_EQ(server_->associationCount(), 2u);
}

TEST_P(Udp2022ServerTest, ASessionOutlivesAShortUdpTimeoutForItsReplayWindow) {
  // A packet stays fresh for 60 s: a session forgotten sooner would take its replay as new.
  env_.udp_timeout = seconds(1);
  start();
  Fd client = bindUdpLoopback();
  const std::vector<uint8_t> once = packet(session_, 0, echo_.port(), "once");
  ASSERT_TRUE(sendDatagram(client.get(), once, server_address_));
  std::vector<uint8_t> got;
  reply(client, &got);
  // Past the 1 s timeout and two sweeps of the table.
  runUntil(
      loop_, [] { return false; }, std::chrono::milliseconds(2300));
  EXPECT_EQ(stats().expirations, 0u);
  EXPECT_EQ(server_->associationCount(), 1u);
  ASSERT_TRUE(sendDatagram(client.get(), once, server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_replayed_packet == 1; }));
  EXPECT_EQ(echo_.received().size(), 1u);
}

// SIP023 on a UDP port (PROTOCOL.md §2.7): AES methods only (ChaCha has no identity headers).
class Udp2022IdentityTest : public Udp2022ServerTest {
 protected:
  Udp2022IdentityTest()
      : ipsk_(shadowrelay::testing::sequentialKey(method_->key_size, 0x40)),
        bob_key_(shadowrelay::testing::sequentialKey(method_->key_size, 0x60)) {}

  RelayUser user(const std::string& name, const crypto::MasterKey& key) const {
    RelayUser u;
    u.name = name;
    u.method = method_;
    u.provider = &crypto::opensslProvider();
    u.key = key;
    return u;
  }

  /// The table of `users` behind the port's identity key.
  UserTablePtr table(std::vector<RelayUser> users, uint64_t generation) const {
    std::vector<IdentityKey> identity;
    identity.push_back(makeIdentityKey(0, method_->name.data(), ipsk_));
    return makeTable(std::move(users), generation, nullptr, std::move(identity));
  }

  void startIdentity(size_t max_associations = 16) {
    context_ = std::make_unique<TestWorkerContext>(loop_, env_);
    ASSERT_TRUE(context_->init().ok());
    context_->setUsers(table({user("alice", psk_), user("bob", bob_key_)}, 1));
    Fd socket = bindUdpLoopback();
    server_address_ = loopbackAddress(portOf(socket.get()));
    server_ = std::make_unique<Udp2022Server>(*context_, std::move(socket), max_associations);
  }

  /// A client packet with one identity header: separate header under `identity`, the header
  /// naming `user_key`, which keys the body.
  std::vector<uint8_t> identityPacket(const crypto::SessionId& session, uint64_t packet_id,
                                      const std::string& payload, const crypto::MasterKey& identity,
                                      const crypto::MasterKey& user_key) {
    const crypto::MasterKey keys[] = {identity, user_key};
    crypto::Udp2022Sealer sealer(*method_, crypto::opensslProvider(), keys);
    crypto::PacketHeader2022 header;
    header.type = crypto::kClientHeaderType;
    header.session_id = session;
    header.packet_id = packet_id;
    header.timestamp = loop_.unixSeconds();
    header.address = loopbackTarget(echo_.port());
    std::vector<uint8_t> out(sealer.packetSize(header, bytesOf(payload).size()));
    EXPECT_EQ(sealer.seal(header, bytesOf(payload), out), out.size());
    return out;
  }

  /// The next reply at `client`, which must open under `key` alone (no identity header).
  std::vector<uint8_t> replyUnder(const Fd& client, const crypto::MasterKey& key,
                                  crypto::OpenedPacket2022* opened_out = nullptr) {
    const std::vector<uint8_t> packet = awaitDatagram(loop_, client.get());
    crypto::Udp2022Opener opener(*method_, crypto::opensslProvider(), key.bytes(),
                                 crypto::kServerHeaderType);
    std::vector<uint8_t> plain(packet.size());
    const crypto::OpenedPacket2022 opened = opener.open(packet, plain, loop_.unixSeconds());
    EXPECT_EQ(opened.status, crypto::Status2022::Ok) << crypto::statusName(opened.status);
    if (opened_out != nullptr) *opened_out = opened;
    return std::vector<uint8_t>(opened.payload.begin(), opened.payload.end());
  }

  const crypto::MasterKey ipsk_;
  const crypto::MasterKey bob_key_;
};

INSTANTIATE_TEST_SUITE_P(Methods, Udp2022IdentityTest,
                         ::testing::Values("2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm"),
                         shadowrelay::testing::methodParamName);

TEST_P(Udp2022IdentityTest, TwoUsersOnOnePortAreEachAnsweredUnderTheirOwnKey) {
  startIdentity();
  Fd a = bindUdpLoopback();
  Fd b = bindUdpLoopback();
  const crypto::SessionId bob_session{7, 7, 7, 7, 7, 7, 7, 7};
  ASSERT_TRUE(sendDatagram(a.get(), identityPacket(session_, 0, "alice", ipsk_, psk_),
                           server_address_));
  ASSERT_TRUE(sendDatagram(b.get(), identityPacket(bob_session, 0, "bob", ipsk_, bob_key_),
                           server_address_));
  crypto::OpenedPacket2022 opened;
  EXPECT_EQ(replyUnder(a, psk_, &opened), bytesOf("alice"));
  EXPECT_EQ(opened.header.client_session_id, session_);
  EXPECT_EQ(replyUnder(b, bob_key_, &opened), bytesOf("bob"));
  EXPECT_EQ(opened.header.client_session_id, bob_session);
  EXPECT_EQ(server_->associationCount(), 2u);
  const WorkerSample& sample = context_->sample();
  EXPECT_EQ(sample.users.at("alice").udp_packets_up, 1u);
  EXPECT_EQ(sample.users.at("alice").udp_packets_down, 1u);
  EXPECT_EQ(sample.users.at("bob").udp_packets_up, 1u);
  EXPECT_EQ(sample.users.at("bob").udp_packets_down, 1u);
  // A reply to alice does not open under bob's key (nor the identity key).
  ASSERT_TRUE(sendDatagram(a.get(), identityPacket(session_, 1, "again", ipsk_, psk_),
                           server_address_));
  const std::vector<uint8_t> packet = awaitDatagram(loop_, a.get());
  for (const crypto::MasterKey* key : {&bob_key_, &ipsk_}) {
    crypto::Udp2022Opener opener(*method_, crypto::opensslProvider(), key->bytes(),
                                 crypto::kServerHeaderType);
    std::vector<uint8_t> plain(packet.size());
    EXPECT_NE(opener.open(packet, plain, loop_.unixSeconds()).status, crypto::Status2022::Ok);
  }
}

// Issue 15 §4: with several users on the port, one holds at most a quarter of the table (by
// default): its further sessions are dropped and counted, another user's still start.
TEST_P(Udp2022IdentityTest, AUserHoldsAtMostItsShareOfTheSessions) {
  startIdentity(/*max_associations=*/8);
  Fd client = bindUdpLoopback();
  for (uint8_t s = 1; s <= 3; ++s) {
    ASSERT_TRUE(sendDatagram(client.get(),
                             identityPacket({s, s, s, s, s, s, s, s}, 0, "x", ipsk_, psk_),
                             server_address_));
  }
  ASSERT_TRUE(runUntil(loop_, [&] { return server_->stats().dropped_user_cap == 1; }));
  EXPECT_EQ(server_->associationCount(), 2u);
  const crypto::SessionId bob_session{9, 9, 9, 9, 9, 9, 9, 9};
  ASSERT_TRUE(sendDatagram(client.get(), identityPacket(bob_session, 0, "b", ipsk_, bob_key_),
                           server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return server_->associationCount() == 3u; }));
}

TEST_P(Udp2022IdentityTest, AnUnknownIdentityOrNoneIsDroppedAndCounted) {
  startIdentity();
  Fd client = bindUdpLoopback();
  const crypto::MasterKey stranger = shadowrelay::testing::sequentialKey(method_->key_size, 0x90);
  // An identity header naming nobody; one under another identity key; none at all (the user's
  // key alone, or the identity key alone).
  ASSERT_TRUE(sendDatagram(client.get(), identityPacket(session_, 0, "x", ipsk_, stranger),
                           server_address_));
  ASSERT_TRUE(sendDatagram(client.get(), identityPacket(session_, 1, "x", stranger, psk_),
                           server_address_));
  ASSERT_TRUE(
      sendDatagram(client.get(), packet(session_, 2, echo_.port(), "x"), server_address_));
  ASSERT_TRUE(sendDatagram(client.get(), packet(session_, 3, echo_.port(), "x", 0, &ipsk_),
                           server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_open == 4; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_TRUE(echo_.received().empty());
  EXPECT_FALSE(datagramWaiting(client.get()));
  EXPECT_EQ(stats().associations, 0u);
  // None moved a window: the same IDs from alice are new.
  ASSERT_TRUE(sendDatagram(client.get(), identityPacket(session_, 0, "ok", ipsk_, psk_),
                           server_address_));
  EXPECT_EQ(replyUnder(client, psk_), bytesOf("ok"));
}

TEST_P(Udp2022IdentityTest, AnotherUserCannotTakeOverASession) {
  // Every user holds the identity key, so can read another's session ID: the session stays
  // with the key that started it.
  startIdentity();
  Fd a = bindUdpLoopback();
  Fd b = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(a.get(), identityPacket(session_, 0, "alice", ipsk_, psk_),
                           server_address_));
  EXPECT_EQ(replyUnder(a, psk_), bytesOf("alice"));
  ASSERT_TRUE(sendDatagram(b.get(), identityPacket(session_, 1, "bob", ipsk_, bob_key_),
                           server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_session == 1; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_FALSE(datagramWaiting(b.get()));
  EXPECT_EQ(echo_.received().size(), 1u);
  // Alice's window did not move: her ID 1 is still new, and her replies still reach her.
  ASSERT_TRUE(sendDatagram(a.get(), identityPacket(session_, 1, "alice 1", ipsk_, psk_),
                           server_address_));
  EXPECT_EQ(replyUnder(a, psk_), bytesOf("alice 1"));
}

TEST_P(Udp2022IdentityTest, RotationAndDeletionDropTheirAssociations) {
  startIdentity();
  Fd a = bindUdpLoopback();
  Fd b = bindUdpLoopback();
  const crypto::SessionId bob_session{7, 7, 7, 7, 7, 7, 7, 7};
  ASSERT_TRUE(sendDatagram(a.get(), identityPacket(session_, 0, "alice", ipsk_, psk_),
                           server_address_));
  EXPECT_EQ(replyUnder(a, psk_), bytesOf("alice"));
  ASSERT_TRUE(sendDatagram(b.get(), identityPacket(bob_session, 0, "bob", ipsk_, bob_key_),
                           server_address_));
  EXPECT_EQ(replyUnder(b, bob_key_), bytesOf("bob"));
  ASSERT_EQ(server_->associationCount(), 2u);
  // Alice's key rotates: her association ends, bob's stays.
  const crypto::MasterKey rotated = shadowrelay::testing::sequentialKey(method_->key_size, 0xa0);
  UserTablePtr next = table({user("alice", rotated), user("bob", bob_key_)}, 2);
  context_->setUsers(next);
  server_->revoke(*next);
  EXPECT_EQ(server_->associationCount(), 1u);
  // The old key names nobody now; the new one starts a new session.
  ASSERT_TRUE(sendDatagram(a.get(), identityPacket(session_, 1, "old", ipsk_, psk_),
                           server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_open == 1; }));
  ASSERT_TRUE(sendDatagram(a.get(), identityPacket(session_, 2, "new", ipsk_, rotated),
                           server_address_));
  EXPECT_EQ(replyUnder(a, rotated), bytesOf("new"));
  EXPECT_EQ(stats().associations, 3u);
  // Bob is deleted: his association ends and his packets open no more.
  UserTablePtr last = table({user("alice", rotated)}, 3);
  context_->setUsers(last);
  server_->revoke(*last);
  EXPECT_EQ(server_->associationCount(), 1u);
  ASSERT_TRUE(sendDatagram(b.get(), identityPacket(bob_session, 1, "bob", ipsk_, bob_key_),
                           server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_open == 2; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_FALSE(datagramWaiting(b.get()));
}

TEST_P(Udp2022IdentityTest, AnExpiredUserIsIdentifiedThenRefusedAndCounted) {
  startIdentity();
  RelayUser expired = user("alice", psk_);
  expired.expired = true;
  context_->setUsers(table({std::move(expired), user("bob", bob_key_)}, 2));
  Fd client = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(client.get(), identityPacket(session_, 0, "x", ipsk_, psk_),
                           server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] {
    return context_->sample().users.contains("alice") &&
           context_->sample().users.at("alice").refused_expired == 1;
  }));
  EXPECT_EQ(stats().associations, 0u);
  EXPECT_EQ(stats().dropped_open, 0u);
  EXPECT_TRUE(echo_.received().empty());
}

TEST_P(Udp2022IdentityTest, AUserOverQuotaIsIdentifiedThenRefused) {
  startIdentity();
  RelayUser over = user("alice", psk_);
  over.quota_exceeded = true;
  context_->setUsers(table({std::move(over), user("bob", bob_key_)}, 2));
  Fd client = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(client.get(), identityPacket(session_, 0, "x", ipsk_, psk_),
                           server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_over_quota == 1; }));
  EXPECT_EQ(stats().associations, 0u);
  EXPECT_TRUE(echo_.received().empty());
}

}  // namespace
}  // namespace shadowrelay::relay::testing
