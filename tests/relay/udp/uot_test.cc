// SPDX-License-Identifier: Apache-2.0
// UDP over TCP: the wire functions against the bytes of docs/UDP_OVER_TCP.md §9, and a
// UotChannel pair over a socket pair.
#include "relay/udp/uot.h"

#include <sys/socket.h>

#include <chrono>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/event/event_loop.h"

namespace shadowrelay::relay {
namespace {

std::vector<uint8_t> bytes(std::initializer_list<int> list) {
  std::vector<uint8_t> out;
  for (int b : list) out.push_back(static_cast<uint8_t>(b));
  return out;
}

const crypto::SocksAddress kOneOneOneOne = crypto::SocksAddress::ipv4({1, 1, 1, 1}, 53);

TEST(UotWire, MagicNamesAnyPort) {
  EXPECT_EQ(uot::versionOf(crypto::SocksAddress::domain("sp.v2.udp-over-tcp.arpa", 0)), 2);
  EXPECT_EQ(uot::versionOf(crypto::SocksAddress::domain("sp.udp-over-tcp.arpa", 443)), 1);
  EXPECT_EQ(uot::versionOf(crypto::SocksAddress::domain("example.com", 0)), 0);
  EXPECT_EQ(uot::versionOf(kOneOneOneOne), 0);
  EXPECT_EQ(uot::magicTarget(2), crypto::SocksAddress::domain("sp.v2.udp-over-tcp.arpa", 0));
}

TEST(UotWire, RequestMatchesTheDocumentedBytes) {
  uint8_t out[64];
  const size_t n = uot::writeRequest({.connect = false, .destination = kOneOneOneOne}, out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + n), bytes({0x00, 0x01, 1, 1, 1, 1, 0x00, 0x35}));
  uot::Request parsed;
  size_t used = 0;
  const auto connect = bytes({0x07, 0x01, 1, 1, 1, 1, 0x00, 0x35, 0xAA});  // any non-zero
  ASSERT_EQ(uot::parseRequest(connect, &parsed, &used), uot::Parse::Ok);
  EXPECT_TRUE(parsed.connect);
  EXPECT_EQ(parsed.destination, kOneOneOneOne);
  EXPECT_EQ(used, 8u);
  for (size_t cut = 0; cut < 8; ++cut) {
    EXPECT_EQ(uot::parseRequest({connect.data(), cut}, &parsed, &used), uot::Parse::NeedMore)
        << cut;
  }
  EXPECT_EQ(uot::parseRequest(bytes({0x00, 0x02, 1, 1}), &parsed, &used), uot::Parse::Invalid);
}

TEST(UotWire, NonConnectFrameUsesUotAddressTypes) {
  const std::vector<uint8_t> payload = {0x12, 0x34, 0x01};
  std::string out;
  ASSERT_TRUE(uot::appendFrame(false, kOneOneOneOne, payload, &out));
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.end()),
            bytes({0x00, 1, 1, 1, 1, 0x00, 0x35, 0x00, 0x03, 0x12, 0x34, 0x01}));
  out.clear();
  ASSERT_TRUE(uot::appendFrame(false, crypto::SocksAddress::domain("a.b", 80), payload, &out));
  EXPECT_EQ(static_cast<uint8_t>(out[0]), 0x02);
  out.clear();
  std::array<uint8_t, 16> v6{};
  v6[15] = 1;
  ASSERT_TRUE(uot::appendFrame(false, crypto::SocksAddress::ipv6(v6, 80), payload, &out));
  EXPECT_EQ(static_cast<uint8_t>(out[0]), 0x01);
  EXPECT_EQ(out.size(), 1 + 16 + 2 + 2 + payload.size());

  uot::Frame frame;
  const std::vector<uint8_t> in(out.begin(), out.end());
  ASSERT_EQ(uot::parseFrame(in, false, &frame), uot::Parse::Ok);
  EXPECT_EQ(frame.address, crypto::SocksAddress::ipv6(v6, 80));
  EXPECT_EQ(std::vector<uint8_t>(frame.payload.begin(), frame.payload.end()), payload);
  EXPECT_EQ(frame.size, in.size());
  for (size_t cut = 0; cut < in.size(); ++cut) {
    EXPECT_EQ(uot::parseFrame({in.data(), cut}, false, &frame), uot::Parse::NeedMore) << cut;
  }
  // SOCKS5's 0x03/0x04 are not UoT frame types.
  EXPECT_EQ(uot::parseFrame(bytes({0x04, 1, 2, 3}), false, &frame), uot::Parse::Invalid);
}

TEST(UotWire, ConnectFrameIsLengthAndPayload) {
  std::string out;
  const std::vector<uint8_t> payload(300, 0x5A);
  ASSERT_TRUE(uot::appendFrame(true, kOneOneOneOne, payload, &out));
  ASSERT_EQ(out.size(), 302u);
  EXPECT_EQ(static_cast<uint8_t>(out[0]), 0x01);
  EXPECT_EQ(static_cast<uint8_t>(out[1]), 0x2C);
  uot::Frame frame;
  const std::vector<uint8_t> in(out.begin(), out.end());
  ASSERT_EQ(uot::parseFrame(in, true, &frame), uot::Parse::Ok);
  EXPECT_EQ(frame.payload.size(), 300u);
}

TEST(UotWire, EmptyAndLargestPayloads) {
  std::string out;
  ASSERT_TRUE(uot::appendFrame(true, kOneOneOneOne, {}, &out));
  EXPECT_EQ(out, std::string("\0\0", 2));
  const std::vector<uint8_t> largest(uot::kMaxPayload, 1);
  out.clear();
  EXPECT_TRUE(uot::appendFrame(true, kOneOneOneOne, largest, &out));
  const std::vector<uint8_t> too_big(uot::kMaxPayload + 1, 1);
  out.clear();
  EXPECT_FALSE(uot::appendFrame(true, kOneOneOneOne, too_big, &out));
  EXPECT_TRUE(out.empty());
}

// A client channel and a server channel over a socket pair: the request arrives first, then
// the frames, in both directions; EOF reaches on_closed.
TEST(UotChannelTest, ClientAndServerOverASocketPair) {
  EventLoop loop;
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
  std::vector<std::string> at_server;
  std::vector<std::string> at_client;
  bool server_closed = false;
  std::unique_ptr<UotChannel> server;
  server = UotChannel::server(
      loop, Fd(pair[1]), 2,
      [&](const crypto::SocksAddress& address, std::span<const uint8_t> payload) {
        at_server.push_back(address.toString() + " " +
                            std::string(payload.begin(), payload.end()));
        server->send(crypto::SocksAddress::ipv4({9, 9, 9, 9}, 99), payload);
      },
      [&] { server_closed = true; });
  auto client = UotChannel::client(
      loop, Fd(pair[0]), {.connect = false, .destination = kOneOneOneOne},
      [&](const crypto::SocksAddress& address, std::span<const uint8_t> payload) {
        at_client.push_back(address.toString() + " " +
                            std::string(payload.begin(), payload.end()));
      },
      [] {});
  const std::string big(70000, 'x');  // over the frame limit: refused, nothing queued
  EXPECT_FALSE(client->send(kOneOneOneOne, {reinterpret_cast<const uint8_t*>(big.data()),
                                            big.size()}));
  for (const char* text : {"one", "two", "three"}) {
    ASSERT_TRUE(client->send(crypto::SocksAddress::domain("example.com", 7),
                             {reinterpret_cast<const uint8_t*>(text), std::strlen(text)}));
  }
  for (int i = 0; i < 50 && at_client.size() < 3; ++i) loop.runOnce(std::chrono::milliseconds(20));
  ASSERT_TRUE(server->haveRequest());
  EXPECT_FALSE(server->request().connect);
  EXPECT_EQ(server->request().destination, kOneOneOneOne);
  EXPECT_EQ(at_server, (std::vector<std::string>{"example.com:7 one", "example.com:7 two",
                                                 "example.com:7 three"}));
  EXPECT_EQ(at_client, (std::vector<std::string>{"9.9.9.9:99 one", "9.9.9.9:99 two",
                                                 "9.9.9.9:99 three"}));
  client.reset();  // closes its end: the server sees EOF
  for (int i = 0; i < 50 && !server_closed; ++i) loop.runOnce(std::chrono::milliseconds(20));
  EXPECT_TRUE(server_closed);
  server.reset();
}

// Issue 15 §5: what waits unsent is charged to the worker's byte budget as well; a datagram
// the budget cannot take is dropped and counted, and the charge goes back as the queue drains
// or the channel goes.
TEST(UotChannelTest, QueuedBytesAreChargedToTheWorkersBudget) {
  EventLoop loop;
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
  Fd peer(pair[0]);  // nobody reads it until the end: the kernel buffer fills, then the queue
  ByteBudget budget(256 << 10);
  uint64_t dropped_memory = 0;
  auto channel = UotChannel::server(loop, Fd(pair[1]), 1, [](auto&&...) {}, [] {});
  channel->setBudget(&budget, &dropped_memory);
  const std::vector<uint8_t> datagram(60000, 0x33);
  int sent = 0;
  for (int i = 0; i < 200; ++i) {
    if (channel->send(kOneOneOneOne, datagram)) ++sent;
  }
  EXPECT_GT(sent, 0);
  EXPECT_GT(dropped_memory, 0u);
  EXPECT_LE(channel->queuedBytes(), budget.limit());
  EXPECT_EQ(budget.used(), channel->queuedBytes());
  // Draining the peer lets the queue go, and the budget with it.
  std::vector<uint8_t> sink(1 << 20);
  for (int i = 0; i < 200 && channel->queuedBytes() > 0; ++i) {
    while (::recv(peer.get(), sink.data(), sink.size(), MSG_DONTWAIT) > 0) {
    }
    loop.runOnce(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(channel->queuedBytes(), 0u);
  EXPECT_EQ(budget.used(), 0u);
  ASSERT_TRUE(channel->send(kOneOneOneOne, datagram));
  channel.reset();
  EXPECT_EQ(budget.used(), 0u);
}

}  // namespace
}  // namespace shadowrelay::relay
