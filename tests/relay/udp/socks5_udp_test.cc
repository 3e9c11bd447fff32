// SPDX-License-Identifier: Apache-2.0
// Socks5UdpRelay (local -u): SOCKS5 UDP datagrams from the associating client become SIP004
// packets to the server (a loopback socket the test answers with the reference peer), replies
// come back with the SOCKS5 header; other senders and malformed headers are dropped and counted.
#include "relay/udp/socks5_udp.h"

#include <sys/socket.h>

#include <memory>
#include <set>
#include <vector>

#include "crypto/address.h"
#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/udp_stats.h"
#include "relay/udp/uot.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/reference_client.h"
#include "tests/testing/run_loop.h"
#include "tests/testing/test_users.h"
#include "tests/testing/test_worker_context.h"
#include "tests/testing/upstreams.h"

namespace shadowrelay::relay {
namespace {

using shadowrelay::testing::bytesOf;
using testing::addressBytes;
using testing::awaitDatagram;
using testing::bindUdpLoopback;
using testing::concat;
using testing::datagramWaiting;
using testing::kSettleIterations;
using testing::loopbackAddress;
using testing::makeCredentials;
using testing::openDatagram;
using testing::portOf;
using testing::readSettled;
using testing::runIterations;
using testing::runUntil;
using testing::sealDatagram;
using testing::sendBytes;
using testing::sendDatagram;
using testing::singleUpstream;
using testing::TestWorkerContext;

const crypto::SocksAddress kDestination = crypto::SocksAddress::ipv4({192, 0, 2, 53}, 53);
const std::vector<uint8_t> kSocksHeader = {0x00, 0x00, 0x00};  // RSV RSV FRAG

class Socks5UdpRelayTest : public ::testing::Test {
 protected:
  Socks5UdpRelayTest() {
    env_.credentials = makeCredentials("client-password");
    env_.config.nameserver = "127.0.0.1:1";  // never asked
    env_.udp_server = loopbackAddress(portOf(server_.get()));
    upstreams_ = singleUpstream(env_);
  }

  void start() {
    context_ = std::make_unique<TestWorkerContext>(loop_, env_);
    ASSERT_TRUE(context_->init().ok());
    // The control connection's local address; its port is not used.
    auto relay = Socks5UdpRelay::open(*context_, loopbackAddress(1080),
                                      loopbackAddress(portOf(client_.get())));
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = std::move(*relay);
  }

  std::vector<uint8_t> sealForClient(const std::vector<uint8_t>& plain) {
    return sealDatagram(*env_.credentials.method, *env_.credentials.provider,
                        env_.credentials.master.bytes(), plain);
  }
  std::optional<std::vector<uint8_t>> openAtServer(const std::vector<uint8_t>& packet) {
    return openDatagram(*env_.credentials.method, *env_.credentials.provider,
                        env_.credentials.master.bytes(), packet);
  }
  // The server answers `payload` from kDestination to the relay at `relay`.
  bool serverAnswers(const std::string& payload, const SocketAddress& relay) {
    return sendDatagram(server_.get(),
                        sealForClient(concat(addressBytes(kDestination), bytesOf(payload))), relay);
  }
  std::vector<uint8_t> socksDatagram(const std::string& payload) {
    return concat(concat(kSocksHeader, addressBytes(kDestination)), bytesOf(payload));
  }
  const UdpStats& stats() { return context_->udpStats(); }

  RelayEnv env_;
  EventLoop loop_;
  Fd server_ = bindUdpLoopback();  // the Shadowsocks server's UDP port
  Fd client_ = bindUdpLoopback();  // the application that asked for the association
  std::unique_ptr<UpstreamBalancer> upstreams_;  // outlives the context
  std::unique_ptr<TestWorkerContext> context_;
  std::unique_ptr<Socks5UdpRelay> relay_;
};

TEST_F(Socks5UdpRelayTest, BindsOnTheControlConnectionsAddress) {
  start();
  EXPECT_EQ(relay_->bound().family(), AF_INET);
  EXPECT_EQ(unmapped(relay_->bound()).toString().rfind("127.0.0.1:", 0), 0u);
  EXPECT_NE(relay_->bound().port(), 0);
  EXPECT_NE(relay_->bound().port(), 1080);
  EXPECT_EQ(stats().associations, 1u);
}

// Each association's port is its own: the kernel's pick for port 0 skips ports held by other
// SO_REUSEADDR sockets only if the new socket has no SO_REUSEADDR either; with it, two relay
// sockets (or a relay socket and, say, shadowsocks-libev's UDP port) shared a port and the one
// bound last took the other's datagrams (the e2e flake of udp_e2e_test's many associations).
// 400 x 400 sockets on ~28000 ephemeral ports: with the flag, ~8 collisions expected.
TEST_F(Socks5UdpRelayTest, AssociationsNeverShareAPort) {
  start();
  ASSERT_GE(raiseFileLimit(), 1000u);
  constexpr int kEach = 400;
  std::vector<Fd> neighbours;  // another program's UDP ports, bound with SO_REUSEADDR
  std::set<uint16_t> taken;
  for (int i = 0; i < kEach; ++i) {
    Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    ASSERT_EQ(::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    const SocketAddress any = loopbackAddress(0);
    ASSERT_EQ(::bind(fd.get(), any.get(), any.len), 0);
    taken.insert(portOf(fd.get()));
    neighbours.push_back(std::move(fd));
  }
  std::vector<std::unique_ptr<Socks5UdpRelay>> relays;
  for (int i = 0; i < kEach; ++i) {
    auto relay = Socks5UdpRelay::open(*context_, loopbackAddress(1080),
                                      loopbackAddress(portOf(client_.get())));
    ASSERT_TRUE(relay.ok()) << relay.status();
    const uint16_t port = (*relay)->bound().port();
    EXPECT_TRUE(taken.insert(port).second) << "association " << i << " got port " << port
                                           << ", which another socket holds";
    relays.push_back(std::move(*relay));
  }
}

TEST_F(Socks5UdpRelayTest, SealsClientDatagramsForTheServerAndUnwrapsReplies) {
  start();
  ASSERT_TRUE(sendDatagram(client_.get(), socksDatagram("query"), relay_->bound()));
  SocketAddress relay_at_server;
  const std::vector<uint8_t> packet = awaitDatagram(loop_, server_.get(), &relay_at_server);
  // The plaintext is the SOCKS5 datagram from ATYP on.
  const auto plain = openAtServer(packet);
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(*plain, concat(addressBytes(kDestination), bytesOf("query")));
  EXPECT_EQ(packet.size(), 16 + 7 + 5 + 16u);
  EXPECT_EQ(stats().packets_in, 1u);
  EXPECT_EQ(stats().bytes_in, 5u);

  // The server answers from the destination's address.
  ASSERT_TRUE(serverAnswers("answer", relay_at_server));
  SocketAddress from;
  EXPECT_EQ(awaitDatagram(loop_, client_.get(), &from), socksDatagram("answer"));
  EXPECT_EQ(from.port(), relay_->bound().port());
  EXPECT_EQ(stats().packets_out, 1u);
  EXPECT_EQ(stats().bytes_out, 6u);
}

TEST_F(Socks5UdpRelayTest, TakesDatagramsOnlyFromTheClientsIp) {
  start();
  // Another host: dropped.
  Fd stranger = bindUdpLoopback("127.0.0.2");
  ASSERT_TRUE(sendDatagram(stranger.get(), socksDatagram("evil"), relay_->bound()));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_foreign == 1; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_FALSE(datagramWaiting(server_.get()));
  EXPECT_EQ(stats().packets_in, 0u);

  // The client's IP from another port is the client (RFC 1928 leaves the port open): relayed,
  // and the reply goes to that port.
  Fd same_host = bindUdpLoopback();
  ASSERT_TRUE(sendDatagram(same_host.get(), socksDatagram("ok"), relay_->bound()));
  SocketAddress relay_at_server;
  EXPECT_EQ(openAtServer(awaitDatagram(loop_, server_.get(), &relay_at_server)),
            concat(addressBytes(kDestination), bytesOf("ok")));
  ASSERT_TRUE(serverAnswers("back", relay_at_server));
  EXPECT_EQ(awaitDatagram(loop_, same_host.get()), socksDatagram("back"));
  EXPECT_FALSE(datagramWaiting(client_.get()));
  EXPECT_FALSE(datagramWaiting(stranger.get()));
  EXPECT_EQ(stats().dropped_foreign, 1u);
}

TEST_F(Socks5UdpRelayTest, DropsFragmentsAndBadHeaders) {
  start();
  std::vector<uint8_t> fragment = socksDatagram("frag");
  fragment[2] = 0x01;  // FRAG 1
  ASSERT_TRUE(sendDatagram(client_.get(), fragment, relay_->bound()));
  const std::vector<uint8_t> bad_type = {0x00, 0x00, 0x00, 0x09, 1, 2, 3, 4, 0, 53, 'x'};
  ASSERT_TRUE(sendDatagram(client_.get(), bad_type, relay_->bound()));
  const std::vector<uint8_t> truncated = {0x00, 0x00, 0x00, 0x01, 192, 0};
  ASSERT_TRUE(sendDatagram(client_.get(), truncated, relay_->bound()));
  ASSERT_TRUE(runUntil(
      loop_, [&] { return stats().dropped_fragment == 1 && stats().dropped_address == 2; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_FALSE(datagramWaiting(server_.get()));
  EXPECT_EQ(stats().packets_in, 0u);
}

TEST_F(Socks5UdpRelayTest, ServerRepliesThatDoNotOpenAreDropped) {
  start();
  ASSERT_TRUE(sendDatagram(client_.get(), socksDatagram("q"), relay_->bound()));
  SocketAddress relay_at_server;
  ASSERT_FALSE(awaitDatagram(loop_, server_.get(), &relay_at_server).empty());
  ASSERT_TRUE(sendDatagram(server_.get(), std::vector<uint8_t>(40, 0x33), relay_at_server));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().dropped_open == 1; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_FALSE(datagramWaiting(client_.get()));
  EXPECT_EQ(stats().packets_out, 0u);
}

TEST_F(Socks5UdpRelayTest, UdpOverTcpOpensOneStreamThroughTheWorker) {
  env_.config.udp_over_tcp = true;
  start();
  ASSERT_TRUE(sendDatagram(client_.get(), socksDatagram("one"), relay_->bound()));
  ASSERT_TRUE(sendDatagram(client_.get(), socksDatagram("two"), relay_->bound()));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats().packets_in == 2; }));
  ASSERT_EQ(context_->streams().size(), 1u);  // one stream for both datagrams
  EXPECT_EQ(context_->streams()[0].target, uot::magicTarget(2));
  EXPECT_FALSE(datagramWaiting(server_.get()));  // nothing over plain UDP

  // The v2 request (not connect, the first destination), then a non-connect frame each.
  const int stream = context_->streams()[0].fd.get();
  const std::vector<uint8_t> frame_address = {0x00, 192, 0, 2, 53, 0x00, 0x35};
  std::vector<uint8_t> expected = concat(std::vector<uint8_t>{0x00}, addressBytes(kDestination));
  for (const char* payload : {"one", "two"}) {
    expected = concat(concat(expected, frame_address), std::vector<uint8_t>{0x00, 0x03});
    expected = concat(expected, bytesOf(payload));
  }
  EXPECT_EQ(readSettled(loop_, stream, expected.size()), expected);

  // A frame from the server side comes out as a SOCKS5 datagram.
  ASSERT_TRUE(sendBytes(
      stream, concat(concat(frame_address, std::vector<uint8_t>{0x00, 0x02}), bytesOf("ok"))));
  EXPECT_EQ(awaitDatagram(loop_, client_.get()), socksDatagram("ok"));
  EXPECT_EQ(stats().packets_out, 1u);
  EXPECT_EQ(stats().bytes_out, 2u);
}

}  // namespace
}  // namespace shadowrelay::relay
