// SPDX-License-Identifier: Apache-2.0
// The association table of a UDP port (LRU bound and idle expiry, counted into UdpStats) on a
// loop driven by the test, and the address helpers and reply opener the UDP ports share.
#include "relay/net/endpoint.h"
#include "relay/udp/udp_association.h"

#include <netinet/in.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "crypto/udp_codec.h"
#include "gtest/gtest.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/udp_stats.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/reference_client.h"
#include "tests/testing/run_loop.h"

namespace shadowrelay::relay {
namespace {

using shadowrelay::testing::bytesOf;
using std::chrono::hours;
using std::chrono::milliseconds;
using testing::addressBytes;
using testing::bindUdpLoopback;
using testing::concat;
using testing::loopbackAddress;
using testing::runUntil;
using testing::sealDatagram;

class UdpAssociationTableTest : public ::testing::Test {
 protected:
  // Adds the association of 127.0.0.1:`port` with its own socket, idle for at most `idle`.
  void add(UdpAssociationTable& table, uint16_t port,
           UdpAssociationTable::Clock::duration idle = hours(1)) {
    const SocketAddress peer = loopbackAddress(port);
    table.add(udpPeerKey(peer), peer, bindUdpLoopback(), AF_INET, idle,
              [this](UdpAssociation&) { ++readable_; });
  }
  static std::string key(uint16_t port) { return udpPeerKey(loopbackAddress(port)); }

  EventLoop loop_;
  UdpStats stats_;
  int readable_ = 0;
};

TEST_F(UdpAssociationTableTest, FullTableEvictsTheLeastRecentlyUsed) {
  UdpAssociationTable table(loop_, /*capacity=*/2, hours(1), stats_);
  add(table, 1001);
  add(table, 1002);
  ASSERT_NE(table.find(key(1001)), nullptr);  // 1001 is now the most recent
  add(table, 1003);
  EXPECT_EQ(table.size(), 2u);
  EXPECT_NE(table.peek(key(1001)), nullptr);
  EXPECT_EQ(table.peek(key(1002)), nullptr);
  EXPECT_NE(table.peek(key(1003)), nullptr);
  EXPECT_EQ(stats_.associations, 3u);
  EXPECT_EQ(stats_.evictions, 1u);
  // peek() does not change the order: 1001 is the oldest now.
  add(table, 1004);
  EXPECT_EQ(table.peek(key(1001)), nullptr);
  EXPECT_EQ(stats_.evictions, 2u);
}

TEST_F(UdpAssociationTableTest, IdleAssociationsExpireAtTheSweep) {
  UdpAssociationTable table(loop_, /*capacity=*/8, milliseconds(50), stats_);
  add(table, 2001, milliseconds(50));
  add(table, 2002, hours(1));
  add(table, 2003, milliseconds(50));
  // The sweep runs once a second on the loop.
  ASSERT_TRUE(runUntil(
      loop_, [&] { return stats_.expirations > 0; }, milliseconds(5000)));
  EXPECT_EQ(stats_.expirations, 2u);
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.peek(key(2001)), nullptr);
  EXPECT_NE(table.peek(key(2002)), nullptr);
  EXPECT_EQ(table.peek(key(2003)), nullptr);
  EXPECT_EQ(stats_.evictions, 0u);
}

TEST_F(UdpAssociationTableTest, WatchesTheAssociationSocket) {
  UdpAssociationTable table(loop_, 4, hours(1), stats_);
  add(table, 3001);
  UdpAssociation& association = *table.peek(key(3001))->value;
  EXPECT_EQ(association.peer.port(), 3001);
  EXPECT_EQ(association.family, AF_INET);
  Fd sender = bindUdpLoopback();
  ASSERT_TRUE(
      testing::sendDatagram(sender.get(), bytesOf("r"), localAddress(association.fd.get())));
  ASSERT_TRUE(runUntil(loop_, [&] { return readable_ > 0; }));
  // Erased: its socket is closed and no longer watched.
  table.erase(key(3001));
  EXPECT_EQ(table.size(), 0u);
  const int before = readable_;
  testing::runIterations(loop_, 10);
  EXPECT_EQ(readable_, before);
}

TEST_F(UdpAssociationTableTest, EraseIfRemovesTheMatchingAssociations) {
  UdpAssociationTable table(loop_, 8, hours(1), stats_);
  for (uint16_t port : {4001, 4002, 4003, 4004}) add(table, port);
  table.eraseIf([](const UdpAssociation& a) { return a.peer.port() % 2 == 0; });
  EXPECT_EQ(table.size(), 2u);
  EXPECT_NE(table.peek(key(4001)), nullptr);
  EXPECT_EQ(table.peek(key(4002)), nullptr);
  EXPECT_NE(table.peek(key(4003)), nullptr);
  EXPECT_EQ(table.peek(key(4004)), nullptr);
  EXPECT_EQ(stats_.evictions, 0u);  // a removal is not an eviction
  EXPECT_EQ(stats_.expirations, 0u);
}

TEST(UdpAddressTest, PeerKeysDifferByPortAndIp) {
  EXPECT_EQ(udpPeerKey(loopbackAddress(1)), udpPeerKey(loopbackAddress(1)));
  EXPECT_NE(udpPeerKey(loopbackAddress(1)), udpPeerKey(loopbackAddress(2)));
  EXPECT_NE(udpPeerKey(loopbackAddress(1)), udpPeerKey(loopbackAddress(1, "127.0.0.2")));
}

class OpenReplyTest : public ::testing::Test {
 protected:
  std::vector<uint8_t> seal(std::span<const uint8_t> master, const std::vector<uint8_t>& plain) {
    return sealDatagram(method_, crypto::opensslProvider(), master, plain);
  }

  const crypto::MethodInfo& method_ = **crypto::findMethod("aes-128-gcm");
  const crypto::MasterKey key_ = crypto::evpBytesToKey("udp", 16);
  crypto::UdpCodec codec_{method_, crypto::opensslProvider()};
  UdpStats stats_;
};

TEST_F(OpenReplyTest, OpensInPlaceAndFindsTheSourceHeader) {
  const std::vector<uint8_t> source = addressBytes(crypto::SocksAddress::ipv4({8, 8, 8, 8}, 53));
  std::vector<uint8_t> packet = seal(key_.bytes(), concat(source, bytesOf("answer")));
  const auto reply = openReply(codec_, key_.bytes(), packet.data(), packet.size(), stats_);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->plain, packet.data() + method_.salt_size);
  EXPECT_EQ(reply->header, source.size());
  EXPECT_EQ(reply->len, source.size() + 6);
  EXPECT_EQ(std::vector<uint8_t>(reply->plain + reply->header, reply->plain + reply->len),
            bytesOf("answer"));
  EXPECT_EQ(stats_.dropped_open + stats_.dropped_address, 0u);
}

TEST_F(OpenReplyTest, CountsWhatItDrops) {
  std::vector<uint8_t> short_packet(method_.salt_size + crypto::kTagSize, 0);
  EXPECT_FALSE(openReply(codec_, key_.bytes(), short_packet.data(), short_packet.size(), stats_));
  EXPECT_EQ(stats_.dropped_open, 1u);

  const crypto::MasterKey other = crypto::evpBytesToKey("other", 16);
  std::vector<uint8_t> wrong_key = seal(other.bytes(), {0x01, 8, 8, 8, 8, 0x00, 0x35, 'x'});
  EXPECT_FALSE(openReply(codec_, key_.bytes(), wrong_key.data(), wrong_key.size(), stats_));
  EXPECT_EQ(stats_.dropped_open, 2u);

  std::vector<uint8_t> bad_header = seal(key_.bytes(), {0x09, 1, 2, 3});
  EXPECT_FALSE(openReply(codec_, key_.bytes(), bad_header.data(), bad_header.size(), stats_));
  EXPECT_EQ(stats_.dropped_address, 1u);
  EXPECT_EQ(stats_.dropped_open, 2u);
}

// Issue 15 §1: a readiness event reads at most the datagrams its port asks for, so a flood
// leaves the rest in the socket for the next event and the worker's other sessions run between.
TEST(ReceiveDatagrams, ReadsAtMostMaxDatagramsPerCall) {
  Fd receiver = bindUdpLoopback();
  Fd sender = bindUdpLoopback();
  const SocketAddress to = loopbackAddress(testing::portOf(receiver.get()));
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(testing::sendDatagram(sender.get(), bytesOf("d" + std::to_string(i)), to));
  }
  std::vector<uint8_t> slots(udp::kRecvBatch * (1 << 16));
  int seen = 0;
  receiveDatagrams(
      receiver.get(), slots.data(), 1 << 16, 0, udp::kRecvBatch,
      [&](const SocketAddress&, uint8_t*, size_t) { ++seen; }, /*max_datagrams=*/20);
  EXPECT_EQ(seen, 20);
  receiveDatagrams(
      receiver.get(), slots.data(), 1 << 16, 0, udp::kRecvBatch,
      [&](const SocketAddress&, uint8_t*, size_t) { ++seen; }, /*max_datagrams=*/32);
  EXPECT_EQ(seen, 40);
}

}  // namespace
}  // namespace shadowrelay::relay
