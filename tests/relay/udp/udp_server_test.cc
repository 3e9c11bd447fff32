// SPDX-License-Identifier: Apache-2.0
// UdpServer on a loop driven by the test: a client socket that seals SIP004 packets with the
// reference peer, a loopback UDP echo as the target, and the port's UdpStats.
#include "relay/udp/udp_server.h"

#include <chrono>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "crypto/address.h"
#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/udp_stats.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/reference_client.h"
#include "tests/testing/run_loop.h"
#include "tests/testing/test_users.h"
#include "tests/testing/test_worker_context.h"
#include "tests/testing/udp_echo.h"

namespace shadowrelay::relay {
namespace {

using shadowrelay::testing::bytesOf;
using std::chrono::seconds;
using testing::addressBytes;
using testing::awaitDatagram;
using testing::bindUdpLoopback;
using testing::concat;
using testing::datagramWaiting;
using testing::kSettleIterations;
using testing::loopbackAddress;
using testing::loopbackTarget;
using testing::makeTable;
using testing::makeUser;
using testing::openDatagram;
using testing::portOf;
using testing::recvDatagram;
using testing::runIterations;
using testing::runUntil;
using testing::sealDatagram;
using testing::sendDatagram;
using testing::TestWorkerContext;
using testing::UdpEcho;

/// A name server the test answers by hand: queries wait on its socket until answerAll(), which
/// answers each A query with 127.0.0.1 and any other with no records.
class HeldDns {
 public:
  HeldDns() : socket_(bindUdpLoopback()), port_(portOf(socket_.get())) {}
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  bool queryWaiting() const { return datagramWaiting(socket_.get()); }
  void answerAll() {
    while (datagramWaiting(socket_.get())) {
      SocketAddress from;
      from.len = sizeof(from.storage);
      uint8_t query[512];
      const ssize_t n = ::recvfrom(socket_.get(), query, sizeof(query), 0, from.get(), &from.len);
      if (n < 12) continue;
      std::vector<uint8_t> answer(query, query + n);
      size_t at = 12;  // the question: labels, then type and class
      while (at < answer.size() && answer[at] != 0) at += answer[at] + 1;
      at += 1;
      if (at + 4 > answer.size()) continue;
      const bool type_a = answer[at] == 0 && answer[at + 1] == 1;
      answer.resize(at + 4);
      answer[2] = 0x81;  // QR, RD
      answer[3] = 0x80;  // RA, NOERROR
      answer[6] = 0;
      answer[7] = type_a ? 1 : 0;  // ANCOUNT
      answer[8] = answer[9] = answer[10] = answer[11] = 0;
      if (type_a) {
        const uint8_t record[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
        answer.insert(answer.end(), record, record + sizeof(record));
      }
      ::sendto(socket_.get(), answer.data(), answer.size(), 0, from.get(), from.len);
    }
  }

 private:
  Fd socket_;
  uint16_t port_;
};

class UdpServerTest : public ::testing::Test {
 protected:
  UdpServerTest() {
    env_.config.allow_private = true;        // the echo target is on loopback
    env_.config.nameserver = "127.0.0.1:1";  // never asked: every target is a literal
    env_.udp_timeout = seconds(60);
  }

  void start(size_t max_associations = 16) { startWith({makeUser("alice")}, max_associations); }
  void startWith(std::vector<RelayUser> users, size_t max_associations = 16) {
    context_ = std::make_unique<TestWorkerContext>(loop_, env_);
    ASSERT_TRUE(context_->init().ok());
    table_ = makeTable(std::move(users));
    context_->setUsers(table_);
    Fd socket = bindUdpLoopback();
    server_address_ = loopbackAddress(portOf(socket.get()));
    server_ = std::make_unique<UdpServer>(*context_, std::move(socket), max_associations);
  }

  // `payload` for `target`, sealed with `who`'s key.
  std::vector<uint8_t> packet(const RelayUser& who, const crypto::SocksAddress& target,
                              const std::string& payload) {
    return sealDatagram(*who.method, *who.provider, who.key.bytes(),
                        concat(addressBytes(target), bytesOf(payload)));
  }
  std::vector<uint8_t> toEcho(const std::string& payload, const std::string& who = "alice") {
    return packet(*table_->find(who), loopbackTarget(echo_.port()), payload);
  }
  // The reply waiting on `client`, opened with `who`'s key (nullopt if that key does not open
  // it).
  std::optional<std::vector<uint8_t>> replyFor(const Fd& client, const std::string& who) {
    SocketAddress from;
    const std::vector<uint8_t> reply = awaitDatagram(loop_, client.get(), &from);
    const RelayUser& user = *table_->find(who);
    return openDatagram(*user.method, *user.provider, user.key.bytes(), reply);
  }
  // Alice and bob on the port; alice's datagram from `client` to echo.test, whose query waits
  // on `dns` when this returns.
  void sendWhileItsNameResolves(HeldDns& dns, const Fd& client) {
    env_.config.nameserver = dns.address();
    startWith({makeUser("alice"), makeUser("bob")});
    ASSERT_TRUE(sendDatagram(
        client.get(),
        packet(*table_->find("alice"), crypto::SocksAddress::domain("echo.test", echo_.port()),
               "late"),
        server_address_));
    ASSERT_TRUE(runUntil(loop_, [&] { return dns.queryWaiting(); }));
  }
  static std::vector<RelayUser> users(int n) {
    std::vector<RelayUser> list;
    for (int i = 0; i < n; ++i) list.push_back(makeUser("user" + std::to_string(i)));
    return list;
  }
  const UdpStats& stats() const { return server_->stats(); }

  RelayEnv env_;
  EventLoop loop_;
  UdpEcho echo_{loop_};
  std::unique_ptr<TestWorkerContext> context_;
  UserTablePtr table_;
  SocketAddress server_address_;
  std::unique_ptr<UdpServer> server_;
};

TEST_F(UdpServerTest, RelaysAPacketToTheTargetAndSealsTheReply) {
  start();
  Fd client = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("ping"), server_address_));
  SocketAddress from;
  const std::vector<uint8_t> reply = awaitDatagram(loop_, client.get(), &from);

  EXPECT_EQ(echo_.received(), std::vector<std::vector<uint8_t>>{bytesOf("ping")});
  EXPECT_EQ(from.port(), server_address_.port());  // from the port the client spoke to
  // Salt, the echo's address header, "ping", tag.
  ASSERT_EQ(reply.size(), 16 + 7 + 4 + 16u);
  const RelayUser& alice = *table_->find("alice");
  const auto plain = openDatagram(*alice.method, *alice.provider, alice.key.bytes(), reply);
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(*plain, concat(addressBytes(loopbackTarget(echo_.port())), bytesOf("ping")));

  EXPECT_EQ(stats().packets_in, 1u);
  EXPECT_EQ(stats().bytes_in, 4u);
  EXPECT_EQ(stats().packets_out, 1u);
  EXPECT_EQ(stats().bytes_out, 4u);
  EXPECT_EQ(stats().associations, 1u);
  EXPECT_EQ(server_->associationCount(), 1u);
  const UserTraffic& traffic = context_->sample().users.at("alice");
  EXPECT_EQ(traffic.udp_packets_up, 1u);
  EXPECT_EQ(traffic.udp_bytes_up, 4u);
  EXPECT_EQ(traffic.udp_packets_down, 1u);
  EXPECT_EQ(traffic.udp_bytes_down, 4u);

  // The same client again: the same association.
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("pong"), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return datagramWaiting(client.get()); }));
  EXPECT_EQ(stats().associations, 1u);
  EXPECT_EQ(stats().packets_out, 2u);
}

TEST_F(UdpServerTest, DropsPacketWithWrongKey) {
  start();
  Fd client = bindUdpLoopback();
  const RelayUser mallory = makeUser("mallory");
  ASSERT_TRUE(sendDatagram(client.get(), packet(mallory, loopbackTarget(echo_.port()), "x"),
                           server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_open == 1; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_TRUE(echo_.received().empty());
  EXPECT_FALSE(datagramWaiting(client.get()));
  EXPECT_EQ(stats().packets_in, 0u);
  EXPECT_EQ(stats().associations, 0u);
}

TEST_F(UdpServerTest, DropsMalformedPackets) {
  start();
  Fd client = bindUdpLoopback();
  // Shorter than salt + tag.
  ASSERT_TRUE(sendDatagram(client.get(), std::vector<uint8_t>(20, 0x01), server_address_));
  // Opens, but ATYP 0x07 is no address type.
  const RelayUser& alice = *table_->find("alice");
  const std::vector<uint8_t> bad_address = {0x07, 127, 0, 0, 1, 0x00, 0x35, 'x'};
  ASSERT_TRUE(sendDatagram(
      client.get(), sealDatagram(*alice.method, *alice.provider, alice.key.bytes(), bad_address),
      server_address_));
  ASSERT_TRUE(
      runUntil(loop_, [&] { return stats().dropped_open == 1 && stats().dropped_address == 1; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_TRUE(echo_.received().empty());
  EXPECT_FALSE(datagramWaiting(client.get()));
  EXPECT_EQ(stats().packets_in, 0u);
}

TEST_F(UdpServerTest, DropsReplayedPacket) {
  start();
  Fd client = bindUdpLoopback();
  const std::vector<uint8_t> once = toEcho("once");
  ASSERT_TRUE(sendDatagram(client.get(), once, server_address_));
  ASSERT_TRUE(sendDatagram(client.get(), once, server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_replay == 1; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_EQ(echo_.received().size(), 1u);
  EXPECT_EQ(stats().packets_in, 1u);
  EXPECT_EQ(recvDatagram(client.get()).size(), 16 + 7 + 4 + 16u);
  EXPECT_FALSE(datagramWaiting(client.get()));  // one reply only
}

TEST_F(UdpServerTest, PacketSaltsGoToTheUdpFilterNotTheTcpOne) {
  // A flood of UDP packets (a fresh salt each) must not push TCP salts out of their filter.
  start();
  Fd client = bindUdpLoopback();
  const std::vector<uint8_t> once = toEcho("salted");
  ASSERT_TRUE(sendDatagram(client.get(), once, server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().packets_in == 1; }));
  const std::span<const uint8_t> salt(once.data(), 16);
  EXPECT_TRUE(env_.udp_salt_filter->contains(salt));
  EXPECT_FALSE(env_.salt_filter->contains(salt));
  EXPECT_EQ(env_.salt_filter->insertCount(), 0u);
}

TEST_F(UdpServerTest, DropsPrivateTargetWithoutAllowPrivate) {
  env_.config.allow_private = false;
  start();
  Fd client = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("x"), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_refused == 1; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_TRUE(echo_.received().empty());
  EXPECT_FALSE(datagramWaiting(client.get()));
  EXPECT_EQ(server_->associationCount(), 0u);
}

TEST_F(UdpServerTest, EvictsTheLeastRecentlyUsedAssociation) {
  start(/*max_associations=*/2);
  Fd a = bindUdpLoopback();
  Fd b = bindUdpLoopback();
  Fd c = bindUdpLoopback();
  for (const Fd* client : {&a, &b, &c}) {
    ASSERT_TRUE(sendDatagram(client->get(), toEcho("hi"), server_address_));
    ASSERT_TRUE(runUntil(loop_, [&] { return datagramWaiting(client->get()); }));
  }
  EXPECT_EQ(stats().associations, 3u);
  EXPECT_EQ(stats().evictions, 1u);
  EXPECT_EQ(server_->associationCount(), 2u);
  // b and c kept theirs; a gets a new one, which evicts b.
  ASSERT_TRUE(sendDatagram(c.get(), toEcho("again"), server_address_));
  ASSERT_TRUE(sendDatagram(a.get(), toEcho("again"), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().packets_out == 5; }));
  EXPECT_EQ(stats().associations, 4u);
  EXPECT_EQ(stats().evictions, 2u);
  EXPECT_EQ(server_->associationCount(), 2u);
}

TEST_F(UdpServerTest, PortFiftyThreeTargetsKeepThirtySecondsNotTheUdpTimeout) {
  env_.udp_timeout = seconds(1);
  start();
  Fd to_echo = bindUdpLoopback();
  Fd to_dns = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(to_echo.get(), toEcho("x"), server_address_));
  // Nothing needs to listen on port 53: the association exists once the datagram went out.
  ASSERT_TRUE(sendDatagram(
      to_dns.get(), packet(*table_->find("alice"), loopbackTarget(53), "query"), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().associations == 2; }));
  // The sweep runs once a second: the echo's association expires after its 1 s.
  ASSERT_TRUE(runUntil(
      loop_, [&] { return stats().expirations > 0; }, std::chrono::seconds(5)));
  EXPECT_EQ(stats().expirations, 1u);
  EXPECT_EQ(server_->associationCount(), 1u);
  // The port 53 one is still there: its client reuses it, the other gets a new one.
  ASSERT_TRUE(sendDatagram(
      to_dns.get(), packet(*table_->find("alice"), loopbackTarget(53), "query"), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().packets_in == 3; }));
  EXPECT_EQ(stats().associations, 2u);
  ASSERT_TRUE(sendDatagram(to_echo.get(), toEcho("y"), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().packets_in == 4; }));
  EXPECT_EQ(stats().associations, 3u);
}

// Issue 15 §6: associations are keyed by (user, client address): a packet in another user's
// key from the same address gets an association of its own and never takes over the first
// one's (whose replies stay sealed with its key and counted under it).
TEST_F(UdpServerTest, AnotherUsersKeyCannotTakeOverAPeersAssociation) {
  startWith({makeUser("alice"), makeUser("bob")});
  Fd client = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("a1", "alice"), server_address_));
  ASSERT_TRUE(replyFor(client, "alice").has_value());
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("b1", "bob"), server_address_));
  ASSERT_TRUE(replyFor(client, "bob").has_value());
  EXPECT_EQ(stats().associations, 2u);
  EXPECT_EQ(server_->associationCount(), 2u);
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("a2", "alice"), server_address_));
  EXPECT_TRUE(replyFor(client, "alice").has_value());
  EXPECT_EQ(stats().associations, 2u);
  EXPECT_EQ(context_->sample().users.at("alice").udp_packets_up, 2u);
  EXPECT_EQ(context_->sample().users.at("bob").udp_packets_up, 1u);
}

// Issue 15 §4: one user holds at most its share of the table (a quarter by default with
// several users), so it cannot evict everyone else's mappings; beyond it, dropped and counted.
TEST_F(UdpServerTest, AUserHoldsAtMostItsShareOfTheTable) {
  startWith({makeUser("alice"), makeUser("bob")}, /*max_associations=*/8);
  std::vector<Fd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(bindUdpLoopback());
    ASSERT_TRUE(sendDatagram(clients.back().get(), toEcho("x", "alice"), server_address_));
  }
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_user_cap == 1; }));
  EXPECT_EQ(server_->associationCount(), 2u);  // 8 / 4
  // Another user still gets one.
  Fd other = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(other.get(), toEcho("y", "bob"), server_address_));
  EXPECT_TRUE(replyFor(other, "bob").has_value());
  EXPECT_EQ(server_->associationCount(), 3u);
}

TEST_F(UdpServerTest, TheUserAssociationCapIsConfigurable) {
  env_.config.udp_user_max_associations = 1;
  startWith({makeUser("alice"), makeUser("bob")}, /*max_associations=*/8);
  Fd a = bindUdpLoopback();
  Fd b = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(a.get(), toEcho("x", "alice"), server_address_));
  ASSERT_TRUE(replyFor(a, "alice").has_value());
  ASSERT_TRUE(sendDatagram(b.get(), toEcho("x", "alice"), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_user_cap == 1; }));
  EXPECT_EQ(server_->associationCount(), 1u);
}

// Issue 15 §1: a datagram from an unknown source is tried against at most --udp-max-trials
// users; a larger port is walked one window per datagram from that source.
TEST_F(UdpServerTest, TrialsPerDatagramAreBoundedAndWalkThePortInWindows) {
  env_.config.udp_max_trials = 3;
  startWith(users(10));
  Fd client = bindUdpLoopback();
  const std::vector<uint8_t> datagram = toEcho("late", "user7");  // 8th in name order
  ASSERT_TRUE(sendDatagram(client.get(), datagram, server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_open == 1; }));
  EXPECT_EQ(context_->users().trials(), 3u);
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("late", "user7"), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_open == 2; }));
  EXPECT_EQ(context_->users().trials(), 6u);
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("late", "user7"), server_address_));
  EXPECT_TRUE(replyFor(client, "user7").has_value());
  EXPECT_EQ(context_->users().trials(), 8u);  // user6, then user7 opened it
  // Known now: its next datagram is one open.
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("again", "user7"), server_address_));
  EXPECT_TRUE(replyFor(client, "user7").has_value());
  EXPECT_EQ(context_->users().trials(), 8u);  // the peer's own user is tried outside the walk
}

// The user a client's IP matched last (e.g. its TCP sessions) is tried first, outside the
// window: a client of a large port gets its first datagram through at once.
TEST_F(UdpServerTest, TheUserItsIpMatchedLastIsTriedFirst) {
  env_.config.udp_max_trials = 1;
  startWith(users(10));
  ASSERT_NE(context_->users().match(0, ipKey(loopbackAddress(1)),
                                    [](const RelayUser& user) { return user.name == "user7"; }),
            nullptr);  // as a TCP session from 127.0.0.1 would
  const uint64_t before = context_->users().trials();
  Fd client = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(client.get(), toEcho("first", "user7"), server_address_));
  EXPECT_TRUE(replyFor(client, "user7").has_value());
  EXPECT_EQ(context_->users().trials(), before);  // the hint is not counted by the matcher
  EXPECT_EQ(stats().dropped_open, 0u);
}

TEST_F(UdpServerTest, TooShortForAnyRequestIsDroppedWithoutATrial) {
  startWith(users(4));
  Fd client = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(client.get(), std::vector<uint8_t>(36, 0x42), server_address_));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_open == 1; }));
  EXPECT_EQ(context_->users().trials(), 0u);
}

// Issue 15 §1: failed trials are paid from the source's budget; once it is spent, the
// source's datagrams are dropped untried (trial_budget), while another source and a peer whose
// user is known go on.
TEST_F(UdpServerTest, ASourceBeyondItsTrialBudgetIsDroppedUntried) {
  env_.config.udp_source_trial_budget = 1;  // a burst of 64 failed trials, then 1 a second
  startWith(users(10));
  Fd known = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(known.get(), toEcho("hi", "user1"), server_address_));
  ASSERT_TRUE(replyFor(known, "user1").has_value());
  const uint64_t before = context_->users().trials();

  Fd flood = bindUdpLoopback("127.0.0.3");  // an address no user was seen from
  const std::vector<uint8_t> junk(2000, 0x17);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(sendDatagram(flood.get(), junk, server_address_));
  ASSERT_TRUE(runUntil(
      loop_, [&] { return stats().dropped_open + stats().dropped_trial_budget == 20; }));
  EXPECT_GE(stats().dropped_trial_budget, 12u);
  EXPECT_LE(context_->users().trials() - before, 64u + 2u);

  // The known peer's user is tried first, outside the budget.
  ASSERT_TRUE(sendDatagram(known.get(), toEcho("still", "user1"), server_address_));
  EXPECT_TRUE(replyFor(known, "user1").has_value());
  // Another source has a budget of its own.
  Fd elsewhere = bindUdpLoopback("127.0.0.2");
  ASSERT_TRUE(sendDatagram(elsewhere.get(), toEcho("new", "user5"), server_address_));
  EXPECT_TRUE(replyFor(elsewhere, "user5").has_value());
}

TEST_F(UdpServerTest, TheWorkersTrialBudgetBoundsEverySource) {
  env_.config.udp_trial_budget = 1;  // a burst of 64 failed trials for the whole worker
  startWith(users(10));
  Fd flood = bindUdpLoopback();
  const std::vector<uint8_t> junk(2000, 0x17);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(sendDatagram(flood.get(), junk, server_address_));
  ASSERT_TRUE(runUntil(
      loop_, [&] { return stats().dropped_open + stats().dropped_trial_budget == 10; }));
  EXPECT_GE(stats().dropped_trial_budget, 3u);
  // A new source meets the spent worker budget.
  Fd elsewhere = bindUdpLoopback("127.0.0.2");
  ASSERT_TRUE(sendDatagram(elsewhere.get(), toEcho("new", "user5"), server_address_));
  ASSERT_TRUE(runUntil(
      loop_, [&] { return stats().dropped_open + stats().dropped_trial_budget == 11; }));
  EXPECT_EQ(stats().packets_in, 0u);
}

// Issue 15 §6: the user table is read again when a datagram is forwarded: one that waited on
// DNS while its user was deleted is dropped (revoked), and no association is made for it.
TEST_F(UdpServerTest, ADatagramWaitingOnDnsForARemovedUserIsDropped) {
  HeldDns dns;
  Fd client = bindUdpLoopback();
  sendWhileItsNameResolves(dns, client);
  // Alice is deleted while her datagram's name resolves.
  UserTablePtr without = makeTable({makeUser("bob")}, 2, table_.get());
  context_->setUsers(without);
  server_->revoke(*without);
  dns.answerAll();
  ASSERT_TRUE(runUntil(loop_, [&] {
    dns.answerAll();
    return stats().dropped_revoked == 1;
  }));
  EXPECT_EQ(stats().packets_in, 0u);
  EXPECT_EQ(server_->associationCount(), 0u);
  EXPECT_TRUE(echo_.received().empty());
}

// The same path with the user kept: the name resolves and the datagram goes (the test above
// fails for the right reason).
TEST_F(UdpServerTest, ADatagramWaitingOnDnsForAKeptUserGoes) {
  HeldDns dns;
  Fd client = bindUdpLoopback();
  sendWhileItsNameResolves(dns, client);
  ASSERT_TRUE(runUntil(loop_, [&] {
    dns.answerAll();
    return stats().packets_in == 1;
  }));
  EXPECT_EQ(stats().dropped_revoked, 0u);
}

}  // namespace
}  // namespace shadowrelay::relay