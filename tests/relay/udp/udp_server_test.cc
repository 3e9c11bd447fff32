// SPDX-License-Identifier: Apache-2.0
// UdpServer on a loop driven by the test: a client socket that seals SIP004 packets with the
// reference peer, a loopback UDP echo as the target, and the port's UdpStats.
#include "relay/udp/udp_server.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

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

class UdpServerTest : public ::testing::Test {
 protected:
  UdpServerTest() {
    env_.config.allow_private = true;        // the echo target is on loopback
    env_.config.nameserver = "127.0.0.1:1";  // never asked: every target is a literal
    env_.udp_timeout = seconds(60);
  }

  void start(size_t max_associations = 16) {
    context_ = std::make_unique<TestWorkerContext>(loop_, env_);
    ASSERT_TRUE(context_->init().ok());
    table_ = makeTable({makeUser("alice")});
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
  std::vector<uint8_t> toEcho(const std::string& payload) {
    return packet(*table_->find("alice"), loopbackTarget(echo_.port()), payload);
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

}  // namespace
}  // namespace shadowrelay::relay
