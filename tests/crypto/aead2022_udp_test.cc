// SPDX-License-Identifier: Apache-2.0
// Shadowsocks 2022 UDP packets: the AES, ChaCha and SIP023 vectors of PROTOCOL.md §2.8
// (vectors.txt §4) through every provider, and each typed error.
#include "crypto/aead2022_udp.h"

#include <memory>
#include <random>

#include "crypto/key_derivation.h"
#include "gtest/gtest.h"
#include "tests/crypto/vectors2022.h"
#include "tests/testing/hex.h"
#include "tests/testing/providers.h"

namespace shadowrelay::crypto {
namespace {

using testing::allProviders;
using testing::bytesOf;
using testing::hex;
using testing::kPsk16;
using testing::kPsk32;
using testing::range;
using testing::unhex;

constexpr uint64_t kTs = testing::kTs2022;
const std::vector<uint8_t>& kUpsk = testing::kUpsk16;
constexpr auto& method = testing::method2022;
constexpr auto& keys = testing::keyList;

// vectors.txt: "UDP client packet, PSK16, session_id 0102030405060708, packet_id 0, to
// 8.8.8.8:53 'hello'": separate header ct | body ct+tag.
const char* const kAesPacket =
    "18ba69bb4661fee5a7cc9ec1a731e278"
    "0f887748f59fbaddc74035aaf8f098481910937ae67325a1e9fa830835febf4b858e07cc4388a2";
// vectors.txt: the same packet for 2022-blake3-chacha20-poly1305, PSK32, nonce 505152..67.
const char* const kChaChaPacket =
    "505152535455565758595a5b5c5d5e5f6061626364656667"
    "a90713ee6a4190db733d6e0b4980c7f95bd3c450897357b8c7e765515158705f"
    "e3053f4596138e6badecb8b2243e16319accdafd781445";
// The body plaintext of the AES packet: type 0 | ts | P = 0 | 8.8.8.8:53 | "hello".
const char* const kAesBody = "00 000000006553f100 0000 01080808080035 68656c6c6f";

SessionId session(const std::string& hex_text) {
  SessionId id{};
  const std::vector<uint8_t> bytes = unhex(hex_text);
  std::copy(bytes.begin(), bytes.end(), id.begin());
  return id;
}

PacketHeader2022 vectorHeader() {
  PacketHeader2022 h;
  h.type = kClientHeaderType;
  h.session_id = session("0102030405060708");
  h.packet_id = 0;
  h.timestamp = kTs;
  h.padding = 0;
  h.address = SocksAddress::ipv4({8, 8, 8, 8}, 53);
  return h;
}

std::vector<uint8_t> sealAll(Udp2022Sealer& sealer, const PacketHeader2022& header,
                             const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out(sealer.packetSize(header, payload.size()));
  EXPECT_EQ(sealer.seal(header, payload, out), out.size());
  return out;
}

struct Opened {
  OpenedPacket2022 result;
  std::vector<uint8_t> out;
  std::string payload() const { return {result.payload.begin(), result.payload.end()}; }
};

Opened openAll(Udp2022Opener& opener, const std::vector<uint8_t>& packet, uint64_t now = kTs) {
  Opened o;
  o.out.resize(packet.size());
  o.result = opener.open(packet, o.out, now);
  return o;
}

// An AES-method packet built here from the primitives (not the sealer), with any body.
std::vector<uint8_t> craftAesPacket(const AeadProvider& p, const std::vector<uint8_t>& psk,
                                    const std::vector<uint8_t>& separate_header,
                                    const std::vector<uint8_t>& body) {
  std::vector<uint8_t> packet(16 + body.size() + kTagSize);
  EXPECT_TRUE(p.createAes(psk)->encrypt(BlockCipher::InBlock(separate_header.data(), 16),
                                        BlockCipher::OutBlock(packet.data(), 16)));
  std::vector<uint8_t> subkey(psk.size());
  sessionSubkey2022(psk, {separate_header.data(), 8}, subkey);
  AeadPtr aead =
      p.create(psk.size() == 16 ? AeadAlgorithm::Aes128Gcm : AeadAlgorithm::Aes256Gcm, subkey);
  EXPECT_TRUE(aead->seal({separate_header.data() + 4, 12}, {}, body, packet.data() + 16));
  return packet;
}

// ---- Known answers ----

TEST(Aead2022UdpTest, AesClientPacketMatchesSharedVectorAndOpens) {
  const MethodInfo& m = method("2022-blake3-aes-128-gcm");
  for (const AeadProvider* p : allProviders()) {
    SCOPED_TRACE(std::string(p->name()));
    Udp2022Sealer sealer(m, *p, keys({kPsk16}));
    ASSERT_TRUE(sealer.valid());
    EXPECT_EQ(hex(sealAll(sealer, vectorHeader(), bytesOf("hello"))), kAesPacket);
    // The same body sealed by hand with the vector's subkey and nonce.
    const std::vector<uint8_t> by_hand =
        craftAesPacket(*p, kPsk16, unhex("0102030405060708 0000000000000000"), unhex(kAesBody));
    EXPECT_EQ(hex(by_hand), kAesPacket);

    Udp2022Opener opener(m, *p, kPsk16, kClientHeaderType);
    ASSERT_TRUE(opener.valid());
    const Opened o = openAll(opener, unhex(kAesPacket));
    ASSERT_EQ(o.result.status, Status2022::Ok);
    EXPECT_EQ(o.payload(), "hello");
    EXPECT_EQ(o.result.header.type, kClientHeaderType);
    EXPECT_EQ(o.result.header.session_id, session("0102030405060708"));
    EXPECT_EQ(o.result.header.packet_id, 0u);
    EXPECT_EQ(o.result.header.timestamp, kTs);
    EXPECT_EQ(o.result.header.padding, 0u);
    EXPECT_EQ(o.result.header.address.toString(), "8.8.8.8:53");
    EXPECT_FALSE(o.result.user.has_value());
    // In place: the body opened where it lies.
    std::vector<uint8_t> buf = unhex(kAesPacket);
    const OpenedPacket2022 in_place =
        opener.open(buf, std::span(buf).subspan(opener.bodyOffset()), kTs);
    ASSERT_EQ(in_place.status, Status2022::Ok);
    EXPECT_EQ(std::string(in_place.payload.begin(), in_place.payload.end()), "hello");
  }
}

TEST(Aead2022UdpTest, ChaChaClientPacketMatchesSharedVectorAndOpens) {
  const MethodInfo& m = method("2022-blake3-chacha20-poly1305");
  for (const AeadProvider* p : allProviders()) {
    SCOPED_TRACE(std::string(p->name()));
    Udp2022Sealer sealer(m, *p, keys({kPsk32}));
    ASSERT_TRUE(sealer.valid());
    sealer.setNonceForTest(range(0x50, 24));
    EXPECT_EQ(hex(sealAll(sealer, vectorHeader(), bytesOf("hello"))), kChaChaPacket);
    // Without the test nonce: a random one each time.
    const std::vector<uint8_t> a = sealAll(sealer, vectorHeader(), bytesOf("hello"));
    const std::vector<uint8_t> b = sealAll(sealer, vectorHeader(), bytesOf("hello"));
    EXPECT_NE(hex({a.data(), 24}), hex({b.data(), 24}));

    Udp2022Opener opener(m, *p, kPsk32, kClientHeaderType);
    ASSERT_TRUE(opener.valid());
    EXPECT_EQ(opener.bodyOffset(), 24u);
    for (const std::vector<uint8_t>& packet : {unhex(kChaChaPacket), a, b}) {
      const Opened o = openAll(opener, packet);
      ASSERT_EQ(o.result.status, Status2022::Ok);
      EXPECT_EQ(o.payload(), "hello");
      EXPECT_EQ(o.result.header.session_id, session("0102030405060708"));
      EXPECT_EQ(o.result.header.packet_id, 0u);
      EXPECT_EQ(o.result.header.timestamp, kTs);
      EXPECT_EQ(o.result.header.address.toString(), "8.8.8.8:53");
    }
  }
}

// vectors.txt "SIP023 ... UDP EIH": separate header keyed with the iPSK, the EIH, then the
// body keyed with the uPSK's subkey fe38e988... (sealed here by hand with that key).
TEST(Aead2022UdpTest, IdentityHeaderPacketMatchesSharedVectorsAndFindsTheUser) {
  const MethodInfo& m = method("2022-blake3-aes-128-gcm");
  UserKeyTable users;
  users.add(range(0x80, 16));
  users.add(kUpsk);
  for (const AeadProvider* p : allProviders()) {
    SCOPED_TRACE(std::string(p->name()));
    Udp2022Sealer sealer(m, *p, keys({kPsk16, kUpsk}));
    ASSERT_TRUE(sealer.valid());
    const std::vector<uint8_t> packet = sealAll(sealer, vectorHeader(), bytesOf("hello"));
    AeadPtr body = p->create(AeadAlgorithm::Aes128Gcm, unhex("fe38e988e2835b762419032647148386"));
    std::vector<uint8_t> body_ct(unhex(kAesBody).size() + kTagSize);
    ASSERT_TRUE(body->seal(unhex("050607080000000000000000"), {}, unhex(kAesBody), body_ct.data()));
    EXPECT_EQ(hex(packet),
              "18ba69bb4661fee5a7cc9ec1a731e278"
              "fc75266e5be59a6ca2ff5517b80bad7d" +
                  hex(body_ct));

    Udp2022Opener server(m, *p, kPsk16, kClientHeaderType, &users);
    ASSERT_TRUE(server.valid());
    EXPECT_EQ(server.bodyOffset(), 32u);
    const Opened o = openAll(server, packet);
    ASSERT_EQ(o.result.status, Status2022::Ok);
    EXPECT_EQ(o.payload(), "hello");
    ASSERT_TRUE(o.result.user.has_value());
    EXPECT_EQ(hex(*o.result.user), "9b4a4b2e89211e24036becf02bed2372");
    // Unknown user; a server without users; a server with another key.
    UserKeyTable others;
    others.add(range(0x80, 16));
    Udp2022Opener strangers(m, *p, kPsk16, kClientHeaderType, &others);
    EXPECT_EQ(openAll(strangers, packet).result.status, Status2022::UnknownUser);
    Udp2022Opener single(m, *p, kPsk16, kClientHeaderType);
    EXPECT_EQ(openAll(single, packet).result.status, Status2022::AuthFailed);
    Udp2022Opener wrong(m, *p, range(1, 16), kClientHeaderType, &users);
    EXPECT_EQ(openAll(wrong, packet).result.status, Status2022::UnknownUser);
    // The server's reply to that user carries no EIH and is keyed with the uPSK alone.
    Udp2022Sealer reply(m, *p, keys({kUpsk}));
    PacketHeader2022 h = vectorHeader();
    h.type = kServerHeaderType;
    h.session_id = session("a1a2a3a4a5a6a7a8");
    h.client_session_id = session("0102030405060708");
    Udp2022Opener client(m, *p, kUpsk, kServerHeaderType);
    const Opened r = openAll(client, sealAll(reply, h, bytesOf("pong")));
    ASSERT_EQ(r.result.status, Status2022::Ok);
    EXPECT_EQ(r.payload(), "pong");
    EXPECT_EQ(r.result.header.client_session_id, session("0102030405060708"));
  }
}

// ---- Errors ----

TEST(Aead2022UdpTest, AnyFlippedByteFailsToOpen) {
  for (const AeadProvider* p : allProviders()) {
    for (const auto& [name, psk, packet] :
         {std::tuple{"2022-blake3-aes-128-gcm", kPsk16, unhex(kAesPacket)},
          std::tuple{"2022-blake3-chacha20-poly1305", kPsk32, unhex(kChaChaPacket)}}) {
      Udp2022Opener opener(method(name), *p, psk, kClientHeaderType);
      for (size_t i = 0; i < packet.size(); ++i) {
        std::vector<uint8_t> bad = packet;
        bad[i] ^= 0x01;
        EXPECT_EQ(openAll(opener, bad).result.status, Status2022::AuthFailed) << name << " " << i;
      }
      EXPECT_EQ(openAll(opener, packet).result.status, Status2022::Ok);  // the cache recovers
    }
  }
}

TEST(Aead2022UdpTest, TypeTimestampAndLengthErrors) {
  for (const char* name : {"2022-blake3-aes-256-gcm", "2022-blake3-chacha20-poly1305"}) {
    const MethodInfo& m = method(name);
    for (const AeadProvider* p : allProviders()) {
      SCOPED_TRACE(std::string(p->name()) + " " + name);
      Udp2022Sealer sealer(m, *p, keys({kPsk32}));
      // With a payload: an empty client packet is shorter than any server packet (BadLength).
      const std::vector<uint8_t> client_packet = sealAll(sealer, vectorHeader(), bytesOf("ping"));
      PacketHeader2022 reply_header = vectorHeader();
      reply_header.type = kServerHeaderType;
      const std::vector<uint8_t> server_packet = sealAll(sealer, reply_header, bytesOf("ping"));
      Udp2022Opener server(m, *p, kPsk32, kClientHeaderType);
      Udp2022Opener client(m, *p, kPsk32, kServerHeaderType);
      EXPECT_EQ(openAll(server, client_packet).result.status, Status2022::Ok);
      EXPECT_EQ(openAll(client, server_packet).result.status, Status2022::Ok);
      // Reflected packets.
      EXPECT_EQ(openAll(server, server_packet).result.status, Status2022::BadType);
      EXPECT_EQ(openAll(client, client_packet).result.status, Status2022::BadType);
      // The clock.
      for (uint64_t now : {kTs - 30, kTs + 30}) {
        EXPECT_EQ(openAll(server, client_packet, now).result.status, Status2022::Ok);
      }
      for (uint64_t now : {kTs - 31, kTs + 31}) {
        EXPECT_EQ(openAll(server, client_packet, now).result.status, Status2022::StaleTimestamp);
      }
      // Shorter than the smallest packet (no address at all), and too little room to open.
      const size_t smallest = server.bodyOffset() + (usesXChaChaPackets(m) ? 16 : 0) + 11 + 16;
      for (size_t len = 0; len < smallest; ++len) {
        std::vector<uint8_t> cut(client_packet.begin(), client_packet.begin() + len);
        EXPECT_EQ(openAll(server, cut).result.status, Status2022::BadLength) << len;
      }
      std::vector<uint8_t> small(client_packet.size() - server.bodyOffset() - 1);
      EXPECT_EQ(server.open(client_packet, small, kTs).status, Status2022::BadLength);
    }
  }
}

TEST(Aead2022UdpTest, PaddingAndAddressErrors) {
  const MethodInfo& m = method("2022-blake3-aes-128-gcm");
  const std::vector<uint8_t> separate_header = unhex("1111111111111111 0000000000000007");
  struct Case {
    const char* what;
    const char* body;
    Status2022 want;
  };
  const std::vector<Case> cases = {
      {"padding past the end", "00 000000006553f100 0032 000000", Status2022::BadHeader},
      {"no address", "00 000000006553f100 0000", Status2022::BadAddress},
      {"no address after padding", "00 000000006553f100 0002 0000", Status2022::BadAddress},
      {"unknown ATYP", "00 000000006553f100 0000 09 08080808 0035", Status2022::BadAddress},
      {"truncated IPv6", "00 000000006553f100 0000 04 00000000000000000000",
       Status2022::BadAddress},
      {"padding, then an address and no payload",
       "00 000000006553f100 0003 000000 01 7f000001 0035", Status2022::Ok},
  };
  for (const AeadProvider* p : allProviders()) {
    Udp2022Opener opener(m, *p, kPsk16, kClientHeaderType);
    for (const Case& c : cases) {
      const Opened o = openAll(opener, craftAesPacket(*p, kPsk16, separate_header, unhex(c.body)));
      EXPECT_EQ(o.result.status, c.want) << p->name() << ": " << c.what;
      if (c.want == Status2022::Ok) {
        EXPECT_EQ(o.result.header.padding, 3u);
        EXPECT_EQ(o.result.header.packet_id, 7u);
        EXPECT_TRUE(o.result.payload.empty());
      }
    }
  }
}

TEST(Aead2022UdpTest, InvalidConfigurationsAreNotValid) {
  const AeadProvider& p = opensslProvider();
  const MethodInfo& chacha = method("2022-blake3-chacha20-poly1305");
  const MethodInfo& aes128 = method("2022-blake3-aes-128-gcm");
  UserKeyTable users;
  EXPECT_FALSE(Udp2022Sealer(chacha, p, keys({kPsk32, kPsk32})).valid());  // no EIH for ChaCha
  EXPECT_FALSE(Udp2022Opener(chacha, p, kPsk32, kClientHeaderType, &users).valid());
  EXPECT_FALSE(Udp2022Sealer(aes128, p, keys({kPsk32})).valid());  // key size
  EXPECT_FALSE(Udp2022Sealer(aes128, p, keys({kPsk16, kPsk32})).valid());
  EXPECT_FALSE(Udp2022Sealer(aes128, p, {}).valid());
  EXPECT_FALSE(Udp2022Opener(aes128, p, kPsk32, kClientHeaderType).valid());
  EXPECT_FALSE(Udp2022Sealer(**findMethod("aes-128-gcm"), p, keys({kPsk16})).valid());  // 2017
  Udp2022Opener invalid(aes128, p, kPsk32, kClientHeaderType);
  EXPECT_EQ(openAll(invalid, unhex(kAesPacket)).result.status, Status2022::CryptoError);
  std::vector<uint8_t> out(100);
  Udp2022Sealer bad(aes128, p, keys({kPsk32}));
  EXPECT_EQ(bad.seal(vectorHeader(), {}, out), 0u);
  Udp2022Sealer good(aes128, p, keys({kPsk16}));
  std::vector<uint8_t> tiny(good.packetSize(vectorHeader(), 5) - 1);
  EXPECT_EQ(good.seal(vectorHeader(), bytesOf("hello"), tiny), 0u);
}

// ---- Sessions, users, round trips ----

// The body cipher is rekeyed per session (and per user): packets of interleaved sessions and
// users all open, with every field intact.
TEST(Aead2022UdpTest, InterleavedSessionsAndUsersRoundTripForEveryMethodAndProviderPair) {
  std::mt19937 rng(22);
  for (const MethodInfo& m : methodTable()) {
    if (m.edition != Edition::Aead2022) continue;
    for (const AeadProvider* a : allProviders()) {
      for (const AeadProvider* b : allProviders()) {
        SCOPED_TRACE(std::string(m.name) + " " + std::string(a->name()) + "->" +
                     std::string(b->name()));
        std::vector<std::vector<uint8_t>> user_keys(3, std::vector<uint8_t>(m.key_size));
        for (auto& k : user_keys) {
          for (auto& x : k) x = static_cast<uint8_t>(rng());
        }
        std::vector<uint8_t> server_key(m.key_size);
        for (auto& x : server_key) x = static_cast<uint8_t>(rng());
        const bool eih = usesSeparateHeader(m);
        UserKeyTable table;
        std::vector<Udp2022Sealer> clients;
        for (const auto& k : user_keys) {
          table.add(k);
          clients.emplace_back(m, *a, eih ? keys({server_key, k}) : keys({k}));
          ASSERT_TRUE(clients.back().valid());
        }
        std::vector<std::unique_ptr<Udp2022Opener>> servers;
        if (eih) {
          servers.push_back(
              std::make_unique<Udp2022Opener>(m, *b, server_key, kClientHeaderType, &table));
        } else {
          for (const auto& k : user_keys) {
            servers.push_back(std::make_unique<Udp2022Opener>(m, *b, k, kClientHeaderType));
          }
        }
        for (int i = 0; i < 60; ++i) {
          const size_t user = rng() % user_keys.size();
          PacketHeader2022 h;
          h.session_id = session(i % 2 ? "0102030405060708" : "0807060504030201");
          h.packet_id = static_cast<uint64_t>(i) << (i % 40);
          h.timestamp = kTs + rng() % 61 - 30;
          h.padding = rng() % 3 == 0 ? rng() % 900 : 0;
          h.address = i % 3 == 0   ? SocksAddress::domain("example.org", 443)
                      : i % 3 == 1 ? SocksAddress::ipv6({0x20, 0x01, 0x0d, 0xb8}, 53)
                                   : SocksAddress::ipv4({10, 0, 0, 1}, 8080);
          std::vector<uint8_t> payload(rng() % 1500);
          for (auto& x : payload) x = static_cast<uint8_t>(rng());
          const std::vector<uint8_t> packet = sealAll(clients[user], h, payload);
          Udp2022Opener& server = *servers[eih ? 0 : user];
          const Opened o = openAll(server, packet);
          ASSERT_EQ(o.result.status, Status2022::Ok) << i;
          EXPECT_EQ(std::vector<uint8_t>(o.result.payload.begin(), o.result.payload.end()),
                    payload);
          EXPECT_EQ(o.result.header.session_id, h.session_id);
          EXPECT_EQ(o.result.header.packet_id, h.packet_id);
          EXPECT_EQ(o.result.header.timestamp, h.timestamp);
          EXPECT_EQ(o.result.header.padding, h.padding);
          EXPECT_EQ(o.result.header.address, h.address);
          EXPECT_EQ(o.result.user.has_value(), eih);
          if (eih) {
            EXPECT_EQ(*o.result.user, userHash(user_keys[user]));
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace shadowrelay::crypto
