// SPDX-License-Identifier: Apache-2.0
// ClientSession (local: SOCKS5 front; tunnel: fixed target) on a real Worker and EventLoop driven
// on the test thread. The Shadowsocks server is a loopback listener that the test answers with
// the reference SIP004 peer (tests/testing/reference_client.h): the SOCKS5 bytes the application
// sees, and what reaches the server.
#include "relay/tcp/client_session.h"

#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/salt_filter.h"
#include "dns/dns_cache.h"
#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/tcp_stats.h"
#include "relay/worker/worker.h"
#include "tests/relay/tcp/client_worker.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/reference_client.h"
#include "tests/testing/run_loop.h"
#include "tests/testing/test_users.h"

namespace shadowrelay::relay {
namespace {

using shadowrelay::testing::bytesOf;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::acceptWithin;
using testing::addressBytes;
using testing::chunkWireSize;
using testing::concat;
using testing::connectLoopback;
using testing::listenLoopback;
using testing::makeCredentials;
using testing::portOf;
using testing::readAvailable;
using testing::readSettled;
using testing::ReferenceStream;
using testing::runUntil;
using testing::sendBytes;
using testing::sendText;
using testing::tryAccept;
using testing::waitForEof;

const std::vector<uint8_t> kGreeting = {0x05, 0x01, 0x00};  // one method: no authentication
// CONNECT 10.1.2.3:8080 (the local side does not judge targets; the server does).
const std::vector<uint8_t> kConnect = {0x05, 0x01, 0x00, 0x01, 10, 1, 2, 3, 0x1F, 0x90};
const crypto::SocksAddress kConnectTarget = crypto::SocksAddress::ipv4({10, 1, 2, 3}, 8080);
// VER REP RSV, then BND 0.0.0.0:0.
const std::vector<uint8_t> kSucceeded = {0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0};

class ClientSessionTest : public ::testing::Test {
 protected:
  ClientSessionTest() {
    env_.credentials = makeCredentials("client-password");
    env_.config.role = Role::Local;
    env_.config.nameserver = "127.0.0.1:1";  // never asked: the server is a literal
    env_.salt_filter = &salt_filter_;
    env_.dns_cache = &dns_cache_;
    env_.handshake_timeout = seconds(1);
    env_.connect_timeout = seconds(3);
    // Long enough that data sent right after the CONNECT reply is always bundled.
    env_.first_data_wait = milliseconds(2000);
    env_.io_uring = false;
  }

  void start() {
    ASSERT_NO_FATAL_FAILURE(startClientWorker(loop_, env_, server_, &upstreams_, &worker_, &port_));
  }

  ReferenceStream serverStream() {
    return ReferenceStream(*env_.credentials.method, *env_.credentials.provider,
                           env_.credentials.master.bytes());
  }
  // The wire size of a stream's first chunk of `payload` bytes.
  size_t firstChunk(size_t payload) const {
    return chunkWireSize(*env_.credentials.method, payload, /*first=*/true);
  }
  uint64_t closed(CloseReason reason) {
    return worker_->stats().closed[static_cast<size_t>(reason)];
  }
  // Sends `bytes` and returns exactly what came back once `expect` bytes arrived and the loop
  // settled.
  std::vector<uint8_t> exchange(int fd, const std::vector<uint8_t>& bytes, size_t expect) {
    EXPECT_TRUE(sendBytes(fd, bytes));
    return readSettled(loop_, fd, expect);
  }
  // The server reads what the session sent until `plain` bytes opened.
  std::vector<uint8_t> serverReads(int fd, ReferenceStream* stream, size_t plain,
                                   size_t* wire_bytes) {
    std::vector<uint8_t> wire;
    runUntil(loop_, [&] {
      std::vector<uint8_t> more;
      const bool open = readAvailable(fd, &more);
      wire.insert(wire.end(), more.begin(), more.end());
      EXPECT_TRUE(stream->open(more));
      return !open || stream->opened().size() >= plain;
    });
    *wire_bytes = wire.size();
    return stream->opened();
  }

  crypto::SaltFilter salt_filter_{10'000};
  dns::DnsCache dns_cache_;
  RelayEnv env_;
  EventLoop loop_;
  Fd server_ = listenLoopback();  // the Shadowsocks server the sessions connect to
  std::unique_ptr<UpstreamBalancer> upstreams_;  // outlives the worker
  std::unique_ptr<Worker> worker_;
  uint16_t port_ = 0;
};

TEST_F(ClientSessionTest, Socks5ConnectRepliesThenSendsAddressAndFirstDataInOneChunk) {
  start();
  Fd app = connectLoopback(port_);
  EXPECT_EQ(exchange(app.get(), kGreeting, 2), (std::vector<uint8_t>{0x05, 0x00}));
  EXPECT_EQ(exchange(app.get(), kConnect, kSucceeded.size()), kSucceeded);
  ASSERT_TRUE(sendText(app.get(), "GET /"));

  Fd server = acceptWithin(loop_, server_.get());
  ASSERT_TRUE(server.valid());
  ReferenceStream stream = serverStream();
  size_t wire = 0;
  const std::vector<uint8_t> expected = concat(addressBytes(kConnectTarget), bytesOf("GET /"));
  EXPECT_EQ(serverReads(server.get(), &stream, expected.size(), &wire), expected);
  // Salt, one length header, one payload: address and data were sealed together.
  EXPECT_EQ(wire, firstChunk(expected.size()));

  // The server's answer reaches the application as plaintext, and nothing else does.
  ReferenceStream reply = serverStream();
  ASSERT_TRUE(sendBytes(server.get(), reply.seal(std::string("HTTP/1.0 200"))));
  EXPECT_EQ(readSettled(loop_, app.get(), 12), bytesOf("HTTP/1.0 200"));
  const TcpStats& stats = worker_->stats();
  EXPECT_EQ(stats.bytes_from_clients, kGreeting.size() + kConnect.size() + 5);
  EXPECT_EQ(stats.bytes_to_clients, 2 + kSucceeded.size() + 12);
  EXPECT_EQ(stats.bytes_to_remotes, wire);
}

TEST_F(ClientSessionTest, SilentApplicationGetsTheAddressSentAloneAfterTheWait) {
  env_.first_data_wait = milliseconds(20);
  start();
  Fd app = connectLoopback(port_);
  EXPECT_EQ(exchange(app.get(), kGreeting, 2), (std::vector<uint8_t>{0x05, 0x00}));
  EXPECT_EQ(exchange(app.get(), kConnect, kSucceeded.size()), kSucceeded);
  Fd server = acceptWithin(loop_, server_.get());
  ASSERT_TRUE(server.valid());
  ReferenceStream stream = serverStream();
  size_t wire = 0;
  const std::vector<uint8_t> header = addressBytes(kConnectTarget);
  EXPECT_EQ(serverReads(server.get(), &stream, header.size(), &wire), header);
  EXPECT_EQ(wire, firstChunk(header.size()));
  // Later data follows in its own chunk.
  ASSERT_TRUE(sendText(app.get(), "late"));
  EXPECT_EQ(serverReads(server.get(), &stream, header.size() + 4, &wire),
            concat(header, bytesOf("late")));
  EXPECT_EQ(wire, chunkWireSize(*env_.credentials.method, 4, /*first=*/false));
}

TEST_F(ClientSessionTest, GreetingWithoutNoAuthIsAnsweredNoAcceptableAndClosed) {
  start();
  Fd app = connectLoopback(port_);
  ASSERT_TRUE(
      sendBytes(app.get(), std::vector<uint8_t>{0x05, 0x01, 0x02}));  // username/password only
  std::vector<uint8_t> at_app;
  ASSERT_TRUE(waitForEof(loop_, app.get(), &at_app));
  EXPECT_EQ(at_app, (std::vector<uint8_t>{0x05, 0xFF}));
  EXPECT_EQ(closed(CloseReason::SocksError), 1u);
  EXPECT_FALSE(tryAccept(server_.get()).valid());
}

TEST_F(ClientSessionTest, NonSocks5GreetingIsClosedWithoutReply) {
  start();
  Fd app = connectLoopback(port_);
  ASSERT_TRUE(sendBytes(app.get(),
                        std::vector<uint8_t>{0x04, 0x01, 0x00, 0x50, 10, 1, 2, 3, 0}));  // SOCKS4
  std::vector<uint8_t> at_app;
  ASSERT_TRUE(waitForEof(loop_, app.get(), &at_app));
  EXPECT_TRUE(at_app.empty());
  EXPECT_EQ(closed(CloseReason::SocksError), 1u);
}

TEST_F(ClientSessionTest, BindAndUdpAssociateWithoutUdpAreNotSupported) {
  start();
  for (uint8_t command : {uint8_t{0x02}, uint8_t{0x03}}) {
    Fd app = connectLoopback(port_);
    EXPECT_EQ(exchange(app.get(), kGreeting, 2), (std::vector<uint8_t>{0x05, 0x00}));
    std::vector<uint8_t> request = kConnect;
    request[1] = command;
    ASSERT_TRUE(sendBytes(app.get(), request));
    std::vector<uint8_t> at_app;
    ASSERT_TRUE(waitForEof(loop_, app.get(), &at_app));
    // REP 0x07: command not supported.
    EXPECT_EQ(at_app, (std::vector<uint8_t>{0x05, 0x07, 0x00, 0x01, 0, 0, 0, 0, 0, 0}))
        << "command " << int{command};
  }
  EXPECT_EQ(closed(CloseReason::SocksError), 2u);
  EXPECT_FALSE(tryAccept(server_.get()).valid());
}

TEST_F(ClientSessionTest, ServerReplyThatDoesNotOpenEndsTheSession) {
  start();
  Fd app = connectLoopback(port_);
  EXPECT_EQ(exchange(app.get(), kGreeting, 2), (std::vector<uint8_t>{0x05, 0x00}));
  EXPECT_EQ(exchange(app.get(), kConnect, kSucceeded.size()), kSucceeded);
  ASSERT_TRUE(sendText(app.get(), "x"));
  Fd server = acceptWithin(loop_, server_.get());
  ASSERT_TRUE(server.valid());
  // A reply sealed with another key.
  const Credentials other = makeCredentials("another-password");
  ReferenceStream wrong(*other.method, *other.provider, other.master.bytes());
  ASSERT_TRUE(sendBytes(server.get(), wrong.seal(std::string("nope"))));
  std::vector<uint8_t> at_app;
  ASSERT_TRUE(waitForEof(loop_, app.get(), &at_app));
  EXPECT_TRUE(at_app.empty());
  EXPECT_EQ(closed(CloseReason::BadStream), 1u);
}

TEST_F(ClientSessionTest, TunnelSendsTheFixedTargetWithoutSocks5) {
  env_.config.role = Role::Tunnel;
  const crypto::SocksAddress dns = crypto::SocksAddress::domain("dns.example", 53);
  env_.tunnel_target = dns;
  start();
  Fd app = connectLoopback(port_);
  ASSERT_TRUE(sendText(app.get(), "query"));
  Fd server = acceptWithin(loop_, server_.get());
  ASSERT_TRUE(server.valid());
  ReferenceStream stream = serverStream();
  size_t wire = 0;
  const std::vector<uint8_t> expected = concat(addressBytes(dns), bytesOf("query"));
  EXPECT_EQ(serverReads(server.get(), &stream, expected.size(), &wire), expected);
  EXPECT_EQ(wire, firstChunk(expected.size()));

  ReferenceStream reply = serverStream();
  ASSERT_TRUE(sendBytes(server.get(), reply.seal(std::string("answer"))));
  EXPECT_EQ(readSettled(loop_, app.get(), 6), bytesOf("answer"));  // no SOCKS5 bytes in front
  EXPECT_EQ(worker_->stats().bytes_to_clients, 6u);
}

}  // namespace
}  // namespace shadowrelay::relay
