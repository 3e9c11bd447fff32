// SPDX-License-Identifier: Apache-2.0
#include "relay/socks5.h"

#include <random>

#include "gtest/gtest.h"
#include "tests/testing/hex.h"

namespace shadowrelay::relay::socks5 {
namespace {

using testing::hex;
using testing::unhex;

TEST(Socks5Test, Greeting) {
  Greeting g;
  EXPECT_EQ(parseGreeting(unhex("05"), &g), Parse::NeedMore);
  EXPECT_EQ(parseGreeting(unhex("0502"), &g), Parse::NeedMore);
  ASSERT_EQ(parseGreeting(unhex("05020200"), &g), Parse::Ok);
  EXPECT_TRUE(g.offers_no_auth);
  EXPECT_EQ(g.size, 4u);
  ASSERT_EQ(parseGreeting(unhex("050102"), &g), Parse::Ok);
  EXPECT_FALSE(g.offers_no_auth);
  EXPECT_EQ(parseGreeting(unhex("0401"), &g), Parse::Invalid);  // SOCKS4
  EXPECT_EQ(parseGreeting(unhex("47"), &g), Parse::Invalid);    // "GET ..."
  EXPECT_EQ(parseGreeting(unhex("0500"), &g), Parse::Invalid);
}

TEST(Socks5Test, ConnectRequestAllAddressTypes) {
  Request r;
  Reply rep;
  const std::vector<uint8_t> in = unhex("050100 03 0b 6578616d706c652e636f6d 0050 ff");
  ASSERT_EQ(parseRequest(in, &r, &rep), Parse::Ok);  // raw_address points into `in`
  EXPECT_EQ(r.command, 0x01);
  EXPECT_EQ(r.address.toString(), "example.com:80");
  EXPECT_EQ(r.size, 18u);
  EXPECT_EQ(hex(r.raw_address), "030b6578616d706c652e636f6d0050");
  ASSERT_EQ(parseRequest(unhex("050100 01 7f000001 1f90"), &r, &rep), Parse::Ok);
  EXPECT_EQ(r.address.toString(), "127.0.0.1:8080");
  ASSERT_EQ(parseRequest(unhex("050300 04 00000000000000000000000000000001 0035"), &r, &rep),
            Parse::Ok);
  EXPECT_EQ(r.command, 0x03);
  EXPECT_EQ(r.address.toString(), "[::1]:53");
}

TEST(Socks5Test, BadRequestsAndReplyCodes) {
  Request r;
  Reply rep;
  EXPECT_EQ(parseRequest(unhex("050100 05 01020304 0050"), &r, &rep), Parse::Invalid);
  EXPECT_EQ(rep, Reply::AddressTypeNotSupported);
  EXPECT_EQ(parseRequest(unhex("040100 01 01020304 0050"), &r, &rep), Parse::Invalid);
  EXPECT_EQ(rep, Reply::GeneralFailure);
  EXPECT_EQ(parseRequest(unhex("050101 01 01020304 0050"), &r, &rep), Parse::Invalid);
  EXPECT_EQ(parseRequest(unhex("050100 03 00 0050"), &r, &rep), Parse::Invalid);
  const std::vector<uint8_t> full = unhex("050100 03 0b 6578616d706c652e636f6d 0050");
  for (size_t cut = 0; cut < full.size(); ++cut) {
    EXPECT_EQ(parseRequest(std::span<const uint8_t>(full).first(cut), &r, &rep), Parse::NeedMore)
        << cut;
  }
}

TEST(Socks5Test, Replies) {
  uint8_t buf[32];
  size_t n = writeReply(Reply::Succeeded, crypto::SocksAddress::ipv4({127, 0, 0, 1}, 1080), buf);
  EXPECT_EQ(hex({buf, n}), "05000001" "7f000001" "0438");
  n = writeReply(Reply::CommandNotSupported, crypto::SocksAddress::ipv4({0, 0, 0, 0}, 0), buf);
  EXPECT_EQ(hex({buf, n}), "05070001000000000000");
  EXPECT_EQ(writeReply(Reply::Succeeded, crypto::SocksAddress::ipv4({0, 0, 0, 0}, 0),
                       std::span<uint8_t>(buf, 5)),
            0u);
}

TEST(Socks5Test, UdpHeader) {
  UdpHeader h;
  ASSERT_EQ(parseUdpHeader(unhex("000000 01 08080808 0035 68656c6c6f"), &h), Parse::Ok);
  EXPECT_EQ(h.frag, 0);
  EXPECT_EQ(h.size, 10u);
  EXPECT_EQ(h.address.toString(), "8.8.8.8:53");
  ASSERT_EQ(parseUdpHeader(unhex("000001 01 08080808 0035"), &h), Parse::Ok);
  EXPECT_EQ(h.frag, 1);
  EXPECT_EQ(parseUdpHeader(unhex("010000 01 08080808 0035"), &h), Parse::Invalid);
  EXPECT_EQ(parseUdpHeader(unhex("000000 07"), &h), Parse::Invalid);
}

TEST(Socks5Test, RandomInputNeverOverreads) {
  std::mt19937 rng(5);
  for (int i = 0; i < 100000; ++i) {
    const size_t len = rng() % 32;
    std::unique_ptr<uint8_t[]> data(new uint8_t[len]);
    for (size_t j = 0; j < len; ++j) data[j] = static_cast<uint8_t>(rng());
    if (len > 0) data[0] = i % 3 == 0 ? 0 : 5;
    std::span<const uint8_t> in(data.get(), len);
    Greeting g;
    Request r;
    Reply rep;
    UdpHeader u;
    if (parseGreeting(in, &g) == Parse::Ok) {
      ASSERT_LE(g.size, len);
    }
    if (parseRequest(in, &r, &rep) == Parse::Ok) {
      ASSERT_LE(r.size, len);
    }
    if (parseUdpHeader(in, &u) == Parse::Ok) {
      ASSERT_LE(u.size, len);
    }
  }
}

// gost-style UDP over TCP frames (docs/UDP_OVER_TCP.md): RSV is DATA's length, big-endian.
TEST(Socks5Test, UdpFrameLengthIsBigEndianAndCountsOnlyData) {
  UdpFrame f;
  // 0x0102 = 258 bytes of data after a 10-byte header.
  std::vector<uint8_t> in = unhex("0102 00 01 7f000001 0035");
  in.resize(10 + 258, 0xab);
  in.push_back(0x99);  // the next frame's first byte
  ASSERT_EQ(parseUdpFrame(in, &f), Parse::Ok);
  EXPECT_EQ(f.header, 10u);
  EXPECT_EQ(f.data, 258u);
  EXPECT_EQ(f.size(), 268u);
  EXPECT_EQ(f.address.toString(), "127.0.0.1:53");
  for (size_t cut = 0; cut < f.size(); ++cut) {
    EXPECT_EQ(parseUdpFrame(std::span<const uint8_t>(in).first(cut), &f), Parse::NeedMore) << cut;
  }
}

TEST(Socks5Test, UdpFrameAddressTypesFragAndEmptyData) {
  UdpFrame f;
  ASSERT_EQ(parseUdpFrame(unhex("0003 00 03 0b 6578616d706c652e636f6d 0050 616263"), &f),
            Parse::Ok);
  EXPECT_EQ(f.address.toString(), "example.com:80");
  EXPECT_EQ(f.header, 18u);
  ASSERT_EQ(parseUdpFrame(unhex("0001 ff 04 00000000000000000000000000000001 0035 00"), &f),
            Parse::Ok);  // gost 3 sets FRAG to 0xff on its tunnel frames
  EXPECT_EQ(f.address.toString(), "[::1]:53");
  EXPECT_EQ(f.size(), 23u);
  ASSERT_EQ(parseUdpFrame(unhex("0000 00 01 0a000001 0035"), &f), Parse::Ok);
  EXPECT_EQ(f.data, 0u);  // an empty datagram
}

TEST(Socks5Test, MalformedUdpFrames) {
  UdpFrame f;
  EXPECT_EQ(parseUdpFrame(unhex("0001 01 01 7f000001 0035 00"), &f), Parse::Invalid);  // FRAG
  EXPECT_EQ(parseUdpFrame(unhex("0001 80"), &f), Parse::Invalid);  // FRAG, seen at once
  EXPECT_EQ(parseUdpFrame(unhex("0001 00 05"), &f), Parse::Invalid);       // ATYP
  EXPECT_EQ(parseUdpFrame(unhex("0001 00 03 00 0035 00"), &f), Parse::Invalid);  // empty name
}

TEST(Socks5Test, WritesUdpFrameHeaders) {
  uint8_t out[300];
  const size_t n =
      writeUdpFrameHeader(crypto::SocksAddress::ipv4({10, 0, 0, 1}, 53), 0x1234, out);
  EXPECT_EQ(hex({out, n}), "12340001" "0a000001" "0035");
  EXPECT_EQ(writeUdpFrameHeader(crypto::SocksAddress::ipv4({10, 0, 0, 1}, 53), 0x10000, out), 0u);
  EXPECT_EQ(writeUdpFrameHeader(crypto::SocksAddress::ipv4({10, 0, 0, 1}, 53), 1,
                                std::span<uint8_t>(out, 9)),
            0u);
  // A written header parses back, with the data after it.
  std::vector<uint8_t> frame(out, out + n);
  frame.resize(n + 0x1234, 7);
  UdpFrame f;
  ASSERT_EQ(parseUdpFrame(frame, &f), Parse::Ok);
  EXPECT_EQ(f.size(), frame.size());
  // In place: a relay datagram's RSV RSV FRAG become LEN FRAG(0).
  std::vector<uint8_t> datagram = unhex("0000 00 01 7f000001 0035 616263");
  ASSERT_TRUE(frameUdpDatagram(datagram, 3));
  EXPECT_EQ(hex(datagram), "000300017f0000010035616263");
}

}  // namespace
}  // namespace shadowrelay::relay::socks5
