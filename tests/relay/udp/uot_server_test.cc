// SPDX-License-Identifier: Apache-2.0
// UotServer: the test writes the UDP-over-TCP bytes (relay/udp/uot.h) into one end of a socket
// pair, the server relays to a loopback UDP echo on the test's loop, and the replies come back
// framed with their source.
#include "relay/udp/uot_server.h"

#include <sys/socket.h>

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/udp_stats.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/run_loop.h"
#include "tests/testing/test_worker_context.h"
#include "tests/testing/udp_echo.h"

namespace shadowrelay::relay {
namespace {

using shadowrelay::testing::bytesOf;
using testing::kSettleIterations;
using testing::readAvailable;
using testing::readSettled;
using testing::runIterations;
using testing::runUntil;
using testing::sendBytes;
using testing::streamPair;
using testing::TestWorkerContext;
using testing::UdpEcho;
using testing::waitForEof;

std::vector<uint8_t> operator+(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class UotServerTest : public ::testing::Test {
 protected:
  UotServerTest() {
    env_.config.nameserver = "127.0.0.1:1";  // never asked: every destination is a literal
    context_ = std::make_unique<TestWorkerContext>(loop_, env_);
    EXPECT_TRUE(context_->init().ok());
  }

  void start(int version, bool allow_private = true) {
    UotServer::Context context;
    context.loop = &loop_;
    context.resolver = &context_->resolver();
    context.target_policy = TargetPolicy(allow_private, nullptr);
    context.stats = &stats_;
    Fd theirs;
    streamPair(&ours_, &theirs);
    server_ = std::make_unique<UotServer>(context, std::move(theirs), version);
  }

  // The echo's address in UoT frames (type 0x00 IPv4) and in the v2 request (SOCKS5 0x01).
  std::vector<uint8_t> echoPort() const {
    return {static_cast<uint8_t>(echo_.port() >> 8), static_cast<uint8_t>(echo_.port())};
  }
  std::vector<uint8_t> frameAddress() const {
    return std::vector<uint8_t>{0x00, 127, 0, 0, 1} + echoPort();
  }
  std::vector<uint8_t> requestAddress() const {
    return std::vector<uint8_t>{0x01, 127, 0, 0, 1} + echoPort();
  }
  RelayEnv env_;
  EventLoop loop_;
  UdpEcho echo_{loop_};
  std::unique_ptr<TestWorkerContext> context_;
  UdpStats stats_;
  Fd ours_;
  std::unique_ptr<UotServer> server_;
};

TEST_F(UotServerTest, V2NonConnectFramesCarryTheirAddressBothWays) {
  start(2);
  const std::vector<uint8_t> ping = bytesOf("ping");
  // isConnect 0, the request's destination, then one frame: address, length, payload.
  ASSERT_TRUE(sendBytes(ours_.get(), std::vector<uint8_t>{0x00} + requestAddress() +
                                         frameAddress() + std::vector<uint8_t>{0x00, 0x04} + ping));
  const std::vector<uint8_t> expected = frameAddress() + std::vector<uint8_t>{0x00, 0x04} + ping;
  EXPECT_EQ(readSettled(loop_, ours_.get(), expected.size()), expected);
  EXPECT_EQ(echo_.received(), std::vector<std::vector<uint8_t>>{ping});
  EXPECT_EQ(stats_.associations, 1u);
  EXPECT_EQ(stats_.packets_in, 1u);
  EXPECT_EQ(stats_.bytes_in, 4u);
  EXPECT_EQ(stats_.packets_out, 1u);
  EXPECT_EQ(stats_.bytes_out, 4u);
}

TEST_F(UotServerTest, V2ConnectFramesAreLengthAndPayloadOnly) {
  start(2);
  ASSERT_TRUE(sendBytes(ours_.get(), std::vector<uint8_t>{0x01} + requestAddress() +
                                         std::vector<uint8_t>{0x00, 0x03} + bytesOf("abc") +
                                         std::vector<uint8_t>{0x00, 0x01} + bytesOf("d")));
  const std::vector<uint8_t> expected = std::vector<uint8_t>{0x00, 0x03} + bytesOf("abc") +
                                        std::vector<uint8_t>{0x00, 0x01} + bytesOf("d");
  EXPECT_EQ(readSettled(loop_, ours_.get(), expected.size()), expected);
  EXPECT_EQ(echo_.received(), (std::vector<std::vector<uint8_t>>{bytesOf("abc"), bytesOf("d")}));
  EXPECT_EQ(stats_.packets_in, 2u);
  EXPECT_EQ(stats_.packets_out, 2u);
}

TEST_F(UotServerTest, V1HasNoRequestHeader) {
  start(1);
  ASSERT_TRUE(
      sendBytes(ours_.get(), frameAddress() + std::vector<uint8_t>{0x00, 0x02} + bytesOf("v1")));
  const std::vector<uint8_t> expected =
      frameAddress() + std::vector<uint8_t>{0x00, 0x02} + bytesOf("v1");
  EXPECT_EQ(readSettled(loop_, ours_.get(), expected.size()), expected);
}

TEST_F(UotServerTest, PrivateDestinationIsDroppedWithoutAllowPrivate) {
  start(2, /*allow_private=*/false);
  ASSERT_TRUE(sendBytes(ours_.get(), std::vector<uint8_t>{0x00} + requestAddress() +
                                         frameAddress() + std::vector<uint8_t>{0x00, 0x01} +
                                         bytesOf("x")));
  ASSERT_TRUE(runUntil(loop_, [&] { return stats_.dropped_refused == 1; }));
  runIterations(loop_, kSettleIterations);
  std::vector<uint8_t> got;
  EXPECT_TRUE(readAvailable(ours_.get(), &got));  // the stream goes on
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(echo_.received().empty());
  EXPECT_EQ(stats_.packets_in, 0u);
}

TEST_F(UotServerTest, EndsWithTheStream) {
  start(2);
  ASSERT_TRUE(sendBytes(ours_.get(), std::vector<uint8_t>{0x00} + requestAddress()));
  ::shutdown(ours_.get(), SHUT_WR);
  // The server closes its end in turn: EOF here.
  std::vector<uint8_t> got;
  ASSERT_TRUE(waitForEof(loop_, ours_.get(), &got));
  EXPECT_TRUE(got.empty());
}

TEST_F(UotServerTest, FramingErrorEndsTheStream) {
  start(2);
  // 0x07 is no UoT address type.
  ASSERT_TRUE(sendBytes(ours_.get(), std::vector<uint8_t>{0x00} + requestAddress() +
                                         std::vector<uint8_t>{0x07, 1, 2, 3, 4, 0, 53, 0, 1, 'x'}));
  std::vector<uint8_t> got;
  ASSERT_TRUE(waitForEof(loop_, ours_.get(), &got));
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(echo_.received().empty());
  EXPECT_EQ(stats_.packets_in, 0u);
}

}  // namespace
}  // namespace shadowrelay::relay
