// SPDX-License-Identifier: Apache-2.0
#include "relay/tcp/gost_udp_framing.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/hex.h"

namespace shadowrelay::relay {
namespace {

using testing::hex;
using testing::unhex;

struct Seen {
  std::vector<std::string> addresses;
  std::vector<std::string> frames;  // hex of each whole frame
};

// Three frames of different address types and sizes, the largest one a full 0xFFFF datagram.
std::vector<uint8_t> threeFrames() {
  std::vector<uint8_t> s = unhex("0003 00 01 7f000001 0035 616263");
  const std::vector<uint8_t> named = unhex("0000 ff 03 04 686f7374 1f90");  // empty data
  s.insert(s.end(), named.begin(), named.end());
  std::vector<uint8_t> big = unhex("ffff 00 04 00000000000000000000000000000001 0007");
  for (size_t i = 0; i < 0xFFFF; ++i) big.push_back(static_cast<uint8_t>(i * 7));
  s.insert(s.end(), big.begin(), big.end());
  return s;
}

GostUdpFraming::Feed feedAll(GostUdpFraming& framing, std::span<const uint8_t> bytes,
                             Seen& seen) {
  return framing.feed(bytes, [&](const socks5::UdpFrame& frame, std::span<const uint8_t> whole) {
    EXPECT_EQ(whole.size(), frame.size());
    seen.addresses.push_back(frame.address.toString());
    seen.frames.push_back(hex(whole));
  });
}

TEST(GostUdpFramingTest, EverySplitGivesTheSameFrames) {
  const std::vector<uint8_t> stream = threeFrames();
  Seen whole;
  GostUdpFraming one;
  ASSERT_EQ(feedAll(one, stream, whole), GostUdpFraming::Feed::Ok);
  ASSERT_EQ(whole.addresses,
            (std::vector<std::string>{"127.0.0.1:53", "host:8080", "[::1]:7"}));
  EXPECT_EQ(whole.frames[0], "000300017f0000010035616263");
  EXPECT_EQ(one.partialBytes(), 0u);
  // Split in two at every byte of the two small frames and around the big one's edges; then
  // in three at a stride across the whole stream.
  std::vector<size_t> cuts;
  for (size_t i = 0; i <= 40; ++i) cuts.push_back(i);
  for (size_t i = stream.size() - 40; i <= stream.size(); ++i) cuts.push_back(i);
  for (size_t cut : cuts) {
    GostUdpFraming framing;
    Seen seen;
    ASSERT_EQ(feedAll(framing, std::span(stream).first(cut), seen), GostUdpFraming::Feed::Ok);
    ASSERT_EQ(feedAll(framing, std::span(stream).subspan(cut), seen), GostUdpFraming::Feed::Ok);
    EXPECT_EQ(seen.frames, whole.frames) << "cut at " << cut;
    EXPECT_EQ(framing.partialBytes(), 0u);
  }
  for (size_t a = 1; a < stream.size(); a += 997) {
    const size_t b = std::min(stream.size(), a + 33333);
    GostUdpFraming framing;
    Seen seen;
    feedAll(framing, std::span(stream).first(a), seen);
    feedAll(framing, std::span(stream).subspan(a, b - a), seen);
    ASSERT_EQ(feedAll(framing, std::span(stream).subspan(b), seen), GostUdpFraming::Feed::Ok);
    EXPECT_EQ(seen.frames, whole.frames) << "cuts at " << a << " and " << b;
  }
}

TEST(GostUdpFramingTest, ByteByByte) {
  const std::vector<uint8_t> stream = threeFrames();
  Seen whole;
  GostUdpFraming reference;
  feedAll(reference, stream, whole);
  GostUdpFraming framing;
  Seen seen;
  for (uint8_t b : stream) {
    ASSERT_EQ(feedAll(framing, {&b, 1}, seen), GostUdpFraming::Feed::Ok);
  }
  EXPECT_EQ(seen.frames, whole.frames);
  // Held input never passes one frame.
  EXPECT_LE(framing.capacityBytes(), 2 * GostUdpFraming::kMaxFrame);
}

TEST(GostUdpFramingTest, MalformedFrameStopsTheStream) {
  for (const char* bad : {"0001 01 01 7f000001 0035 00",  // FRAG 1
                          "0001 00 02 7f000001 0035 00",  // ATYP 2
                          "0001 00 03 00 0035 00"}) {     // empty name
    std::vector<uint8_t> stream = unhex("0001 00 01 7f000001 0035 41");
    const std::vector<uint8_t> tail = unhex(bad);
    stream.insert(stream.end(), tail.begin(), tail.end());
    const std::vector<uint8_t> good = unhex("0001 00 01 7f000001 0035 42");
    stream.insert(stream.end(), good.begin(), good.end());
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      GostUdpFraming framing;
      Seen seen;
      const auto first = feedAll(framing, std::span(stream).first(cut), seen);
      const auto second = feedAll(framing, std::span(stream).subspan(cut), seen);
      EXPECT_EQ(second, GostUdpFraming::Feed::Malformed) << bad << " cut " << cut;
      EXPECT_EQ(seen.frames.size(), 1u) << bad << " cut " << cut;  // the one before it only
      if (first == GostUdpFraming::Feed::Malformed) {
        EXPECT_GE(cut, 11u + 3u);
      }
      // Sticky: nothing more is parsed.
      EXPECT_EQ(feedAll(framing, good, seen), GostUdpFraming::Feed::Malformed);
      EXPECT_EQ(seen.frames.size(), 1u);
    }
  }
}

TEST(GostUdpFramingTest, TruncatedFrameWaitsForMore) {
  std::vector<uint8_t> stream = unhex("0100 00 01 7f000001 0035");
  stream.resize(stream.size() + 100, 1);  // 100 of 256 bytes of data
  GostUdpFraming framing;
  Seen seen;
  EXPECT_EQ(feedAll(framing, stream, seen), GostUdpFraming::Feed::Ok);
  EXPECT_TRUE(seen.frames.empty());
  EXPECT_EQ(framing.partialBytes(), stream.size());
}

TEST(GostUdpFramingTest, ReplyQueueIsBounded) {
  GostUdpFraming framing;
  const std::vector<uint8_t> frame(60000, 3);
  size_t taken = 0;
  for (int i = 0; i < 10; ++i) taken += framing.queue(frame) ? 1 : 0;
  EXPECT_EQ(taken, GostUdpFraming::kMaxQueuedReplies / frame.size());
  EXPECT_LE(framing.queued().size(), GostUdpFraming::kMaxQueuedReplies);
  framing.consume(framing.queued().size() - 10);  // the socket took all but 10 bytes
  EXPECT_EQ(framing.queued().size(), 10u);
  EXPECT_TRUE(framing.queue(frame));
  EXPECT_EQ(framing.queued().size(), 10u + frame.size());
}

}  // namespace
}  // namespace shadowrelay::relay
