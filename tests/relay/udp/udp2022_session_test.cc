// SPDX-License-Identifier: Apache-2.0
// Udp2022ClientSession for each 2022 method: what it seals, opened by the crypto layer as a
// server would; server packets sealed by the crypto layer as a server would, opened by it.
#include "relay/udp/udp2022_session.h"

#include <cstdint>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead2022.h"
#include "crypto/aead2022_udp.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "gtest/gtest.h"
#include "relay/stats/udp_stats.h"
#include "tests/testing/hex.h"
#include "tests/testing/methods2022.h"

namespace shadowrelay::relay {
namespace {

using shadowrelay::testing::bytesOf;

constexpr uint64_t kNow = 1'700'000'000;

class Udp2022ClientSessionTest : public ::testing::TestWithParam<const char*> {
 protected:
  Udp2022ClientSessionTest()
      : method_(**crypto::findAnyMethod(GetParam())),
        psk_(shadowrelay::testing::sequentialKey(method_.key_size, 0)),
        session_(method_, crypto::opensslProvider(), {&psk_, 1}) {}

  /// A server packet of server session `server` answering `client`.
  std::vector<uint8_t> serverPacket(const crypto::SessionId& server, uint64_t packet_id,
                                    const crypto::SessionId& client, const std::string& payload,
                                    uint64_t timestamp = kNow,
                                    uint8_t type = crypto::kServerHeaderType) {
    crypto::Udp2022Sealer sealer(method_, crypto::opensslProvider(),
                                 std::span<const crypto::MasterKey>(&psk_, 1));
    crypto::PacketHeader2022 header;
    header.type = type;
    header.session_id = server;
    header.packet_id = packet_id;
    header.timestamp = timestamp;
    header.client_session_id = client;
    header.address = crypto::SocksAddress::ipv4({10, 0, 0, 1}, 53);
    std::vector<uint8_t> out(sealer.packetSize(header, payload.size()));
    EXPECT_EQ(sealer.seal(header, bytesOf(payload), out), out.size());
    return out;
  }

  /// session_.open() in place, as the relays call it; the payload, or nullopt.
  std::optional<std::string> open(std::vector<uint8_t> packet, uint64_t now = kNow) {
    const size_t at = std::min(session_.bodyOffset(), packet.size());
    auto reply = session_.open(packet, std::span(packet).subspan(at), now, stats_);
    if (!reply) return std::nullopt;
    EXPECT_EQ(reply->source, crypto::SocksAddress::ipv4({10, 0, 0, 1}, 53));
    EXPECT_EQ(reply->address_size, 7u);
    return std::string(reply->payload.begin(), reply->payload.end());
  }

  const crypto::MethodInfo& method_;
  crypto::MasterKey psk_;
  Udp2022ClientSession session_;
  UdpStats stats_;
  const crypto::SessionId server_a_{0xA, 0xA, 0xA, 0xA, 0xA, 0xA, 0xA, 0xA};
  const crypto::SessionId server_b_{0xB, 0xB, 0xB, 0xB, 0xB, 0xB, 0xB, 0xB};
  const crypto::SessionId server_c_{0xC, 0xC, 0xC, 0xC, 0xC, 0xC, 0xC, 0xC};
};

INSTANTIATE_TEST_SUITE_P(Methods, Udp2022ClientSessionTest, shadowrelay::testing::methods2022(),
                         shadowrelay::testing::methodParamName);

TEST_P(Udp2022ClientSessionTest, SealsOneSessionCountingFromZero) {
  ASSERT_TRUE(session_.valid());
  crypto::Udp2022Opener server(method_, crypto::opensslProvider(), psk_.bytes(),
                               crypto::kClientHeaderType);
  const crypto::SocksAddress target = crypto::SocksAddress::domain("example.com", 443);
  for (uint64_t id = 0; id < 3; ++id) {
    const std::string payload = "datagram " + std::to_string(id);
    std::vector<uint8_t> packet(session_.packetSize(target, payload.size()));
    ASSERT_EQ(session_.seal(target, bytesOf(payload), packet, kNow), packet.size());
    std::vector<uint8_t> plain(packet.size());
    const crypto::OpenedPacket2022 opened = server.open(packet, plain, kNow);
    ASSERT_EQ(opened.status, crypto::Status2022::Ok);
    EXPECT_EQ(opened.header.session_id, session_.id());
    EXPECT_EQ(opened.header.packet_id, id);
    EXPECT_EQ(opened.header.timestamp, kNow);
    EXPECT_EQ(opened.header.address, target);
    EXPECT_EQ(std::string(opened.payload.begin(), opened.payload.end()), payload);
  }
  // Another session has another random ID.
  Udp2022ClientSession other(method_, crypto::opensslProvider(), {&psk_, 1});
  EXPECT_NE(other.id(), session_.id());
}

TEST_P(Udp2022ClientSessionTest, TakesEachReplyToItsSessionOnce) {
  const std::vector<uint8_t> first = serverPacket(server_a_, 0, session_.id(), "one");
  EXPECT_EQ(open(first), "one");
  EXPECT_EQ(open(first), std::nullopt);
  EXPECT_EQ(stats_.dropped_replayed_packet, 1u);
  EXPECT_EQ(open(serverPacket(server_a_, 2, session_.id(), "three")), "three");
  EXPECT_EQ(open(serverPacket(server_a_, 1, session_.id(), "two")), "two");  // reordered
  EXPECT_EQ(open(serverPacket(server_a_, 1, session_.id(), "two again")), std::nullopt);
  EXPECT_EQ(stats_.dropped_replayed_packet, 2u);
}

TEST_P(Udp2022ClientSessionTest, DropsWhatIsNotAValidReplyToIt) {
  const crypto::SessionId someone_else{1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(open(serverPacket(server_a_, 0, someone_else, "not ours")), std::nullopt);
  EXPECT_EQ(stats_.dropped_session, 1u);
  EXPECT_EQ(open(serverPacket(server_a_, 1, session_.id(), "stale", kNow - 120)), std::nullopt);
  EXPECT_EQ(open(serverPacket(server_a_, 2, session_.id(), "ahead", kNow + 120)), std::nullopt);
  EXPECT_EQ(stats_.dropped_stale, 2u);
  // A client packet (type 0) reflected back at us.
  EXPECT_EQ(
      open(serverPacket(server_a_, 3, session_.id(), "reflected", kNow, crypto::kClientHeaderType)),
      std::nullopt);
  std::vector<uint8_t> tampered = serverPacket(server_a_, 4, session_.id(), "tampered");
  tampered.back() ^= 1;
  EXPECT_EQ(open(tampered), std::nullopt);
  EXPECT_EQ(open(std::vector<uint8_t>(12, 0)), std::nullopt);
  EXPECT_EQ(stats_.dropped_open, 3u);
  // None of them was taken: the packet IDs are all still new.
  for (uint64_t id = 0; id < 5; ++id) {
    EXPECT_EQ(open(serverPacket(server_a_, id, session_.id(), "ok")), "ok") << id;
  }
}

TEST_P(Udp2022ClientSessionTest, TakesARestartedServerAndKeepsTheOneBefore) {
  EXPECT_EQ(open(serverPacket(server_a_, 0, session_.id(), "a0")), "a0");
  // The server restarted: a new session ID, its counter from 0 again.
  EXPECT_EQ(open(serverPacket(server_b_, 0, session_.id(), "b0")), "b0");
  // Late packets of the one before still arrive, and its window still filters them.
  EXPECT_EQ(open(serverPacket(server_a_, 1, session_.id(), "a1")), "a1");
  EXPECT_EQ(open(serverPacket(server_a_, 0, session_.id(), "a0 again")), std::nullopt);
  EXPECT_EQ(stats_.dropped_replayed_packet, 1u);
  // A third while the one before was heard within the last minute: refused.
  EXPECT_EQ(open(serverPacket(server_c_, 0, session_.id(), "c0"), kNow + 10), std::nullopt);
  EXPECT_EQ(stats_.dropped_session, 1u);
  EXPECT_EQ(open(serverPacket(server_b_, 1, session_.id(), "b1", kNow + 61), kNow + 61), "b1");
  // Once it has been quiet for a minute, a third takes over (a second restart).
  EXPECT_EQ(open(serverPacket(server_c_, 0, session_.id(), "c0", kNow + 61), kNow + 61), "c0");
  EXPECT_EQ(open(serverPacket(server_b_, 2, session_.id(), "b2", kNow + 61), kNow + 61), "b2");
}

}  // namespace
}  // namespace shadowrelay::relay
