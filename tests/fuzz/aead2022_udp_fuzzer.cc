// SPDX-License-Identifier: Apache-2.0
// Shadowsocks 2022 UDP packets (crypto/aead2022_udp), with SIP023 identity headers on the AES
// methods. The input picks a 2022 method, the receiver's clock skew, the receiving side (a
// server, with or without users, or a client) and a packet:
//  0 sealed by Udp2022Sealer (every header field, padding, address and payload from the
//    input), maybe cut short and/or one byte changed;
//  1 sealed by hand: separate header, identity header and body bytes from the input, so the
//    body parser sees anything a key holder can send;
//  2 raw bytes.
// Opened into a separate buffer and in place (out = the packet from bodyOffset(), as the UDP
// server does), twice by the same opener:
//  - every opening agrees (status, header fields, payload);
//  - an intact sealed packet gives back every field and the payload, or exactly the error its
//    type, clock skew or unknown user calls for; a damaged one never opens;
//  - what a hand-sealed body opens to is what its bytes say: the payload is its tail, after
//    the fixed fields, padding and address.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "crypto/aead2022.h"
#include "crypto/aead2022_udp.h"
#include "crypto/identity_header.h"
#include "crypto/key_derivation.h"
#include "tests/fuzz/crypto_fuzzing.h"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {
namespace {

using crypto::MasterKey;
using crypto::Status2022;
using crypto::Udp2022Opener;

struct Opened {
  Status2022 status = Status2022::Ok;
  crypto::PacketHeader2022 header;
  std::vector<uint8_t> payload;
  std::optional<crypto::UserHash> user;

  bool operator==(const Opened& o) const {
    if (status != o.status) return false;
    if (status != Status2022::Ok) return true;
    const crypto::PacketHeader2022& a = header;
    const crypto::PacketHeader2022& b = o.header;
    return a.type == b.type && a.session_id == b.session_id && a.packet_id == b.packet_id &&
           a.timestamp == b.timestamp && a.client_session_id == b.client_session_id &&
           a.padding == b.padding && a.address == b.address && payload == o.payload &&
           user == o.user;
  }
};

Opened open(Udp2022Opener& opener, const std::vector<uint8_t>& packet, uint64_t now,
            bool in_place) {
  std::vector<uint8_t> copy = packet;
  std::vector<uint8_t> separate(packet.size() - std::min(packet.size(), opener.bodyOffset()));
  const std::span<uint8_t> out =
      in_place ? std::span(copy).subspan(std::min(copy.size(), opener.bodyOffset()))
               : std::span(separate);
  const crypto::OpenedPacket2022 r = opener.open(packet, out, now);
  Opened o;
  o.status = r.status;
  if (r.status != Status2022::Ok) return o;
  SR_FUZZ_CHECK(r.payload.data() >= out.data() &&
                r.payload.data() + r.payload.size() <= out.data() + out.size());
  o.header = r.header;
  o.payload.assign(r.payload.begin(), r.payload.end());
  o.user = r.user;
  return o;
}

struct Case {
  const crypto::MethodInfo& method;
  Keys2022& keys;
  bool server = true;           // the receiver is a server (client packets), else a client
  bool users = false;           // a server with users: packets carry an identity header
  uint64_t now = kSenderClock;  // the receiver's clock
  bool fresh = true;

  uint8_t expectedType() const {
    return server ? crypto::kClientHeaderType : crypto::kServerHeaderType;
  }
  /// The receiver: a server with its (identity) key, or a client with the user's key.
  Udp2022Opener opener() const {
    return server ? Udp2022Opener(method, provider(), keys.psk.bytes(), expectedType(),
                                  users ? &keys.users : nullptr)
                  : Udp2022Opener(method, provider(), keys.user.bytes(), expectedType());
  }
};

/// Opens `packet` four ways (copy and in place, each twice with one opener); checks they all
/// agree and returns the result.
Opened openAll(const Case& c, const std::vector<uint8_t>& packet) {
  Udp2022Opener opener = c.opener();
  SR_FUZZ_CHECK(opener.valid());
  const Opened first = open(opener, packet, c.now, false);
  SR_FUZZ_CHECK(open(opener, packet, c.now, true) == first);
  SR_FUZZ_CHECK(open(opener, packet, c.now, false) == first);
  Udp2022Opener fresh = c.opener();
  SR_FUZZ_CHECK(open(fresh, packet, c.now, true) == first);
  return first;
}

void sealed(FuzzInput& in, const Case& c) {
  const bool known = !c.users || in.byte() % 4 != 0;
  crypto::PacketHeader2022 header;
  header.type = in.byte() % 8 == 0 ? in.byte() : c.expectedType();
  const std::vector<uint8_t> session = in.exact(8);
  std::copy(session.begin(), session.end(), header.session_id.begin());
  header.packet_id = in.upTo(UINT64_MAX);
  header.timestamp = kSenderClock;
  const std::vector<uint8_t> client_session = in.exact(8);
  std::copy(client_session.begin(), client_session.end(), header.client_session_id.begin());
  header.padding = in.upTo(1023);
  header.address = readAddress(in);
  Damage damage = Damage::read(in);
  const std::span<const uint8_t> payload = in.rest();

  std::vector<MasterKey> keys;
  if (c.server && c.users) keys.push_back(c.keys.psk);
  keys.push_back(!c.server  ? c.keys.user
                 : !c.users ? c.keys.psk
                 : known    ? c.keys.user
                            : c.keys.stranger);
  crypto::Udp2022Sealer sealer(c.method, provider(), keys);
  SR_FUZZ_CHECK(sealer.valid());
  std::vector<uint8_t> packet(sealer.packetSize(header, payload.size()));
  SR_FUZZ_CHECK(sealer.seal(header, payload, std::span(packet).first(packet.size() - 1)) == 0);
  SR_FUZZ_CHECK(sealer.seal(header, payload, packet) == packet.size());
  damage.apply(packet);
  const Opened o = openAll(c, packet);
  if (!damage.intact()) {
    SR_FUZZ_CHECK(o.status != Status2022::Ok);
    return;
  }
  if (o.status == Status2022::BadLength) {
    // Only a packet sealed for the other direction can be shorter than the fixed fields the
    // receiver expects (a server's carry a client session ID more).
    SR_FUZZ_CHECK(header.type != c.expectedType());
    return;
  }
  const Status2022 expected = !known                            ? Status2022::UnknownUser
                              : header.type != c.expectedType() ? Status2022::BadType
                              : !c.fresh                        ? Status2022::StaleTimestamp
                                                                : Status2022::Ok;
  SR_FUZZ_CHECK(o.status == expected);
  if (expected != Status2022::Ok) return;
  const crypto::PacketHeader2022& h = o.header;
  SR_FUZZ_CHECK(h.type == header.type && h.session_id == header.session_id &&
                h.packet_id == header.packet_id && h.timestamp == header.timestamp &&
                h.padding == header.padding && h.address == header.address);
  if (!c.server) SR_FUZZ_CHECK(h.client_session_id == header.client_session_id);
  SR_FUZZ_CHECK(std::equal(o.payload.begin(), o.payload.end(), payload.begin(), payload.end()));
  if (c.users) SR_FUZZ_CHECK(o.user == crypto::userHash(c.keys.user.bytes()));
}

void handSealed(FuzzInput& in, const Case& c) {
  std::vector<uint8_t> packet;
  std::vector<uint8_t> body;
  // Mostly a body that starts right (type and a fresh timestamp), to get past those checks.
  const bool plausible = in.boolean();
  const size_t fixed_at = crypto::usesXChaChaPackets(c.method) ? 16 : 0;
  const std::span<const uint8_t> bytes = in.piece(2048);
  body.assign(bytes.begin(), bytes.end());
  if (plausible && body.size() >= fixed_at + 9) {
    body[fixed_at] = c.expectedType();
    crypto::storeBe64(&body[fixed_at + 1], kSenderClock);
  }
  std::span<const uint8_t> body_key = c.server ? c.keys.psk.bytes() : c.keys.user.bytes();
  if (crypto::usesXChaChaPackets(c.method)) {
    packet = in.exact(24);
    const crypto::AeadPtr aead =
        provider().create(crypto::AeadAlgorithm::XChaCha20Poly1305, body_key);
    SR_FUZZ_CHECK(aead != nullptr);
    packet.resize(24 + body.size() + crypto::kTagSize);
    SR_FUZZ_CHECK(aead->seal(std::span(packet).first(24), {}, body, packet.data() + 24));
  } else {
    const std::vector<uint8_t> separate = in.exact(16);
    const crypto::BlockCipherPtr header_cipher = provider().createAes(body_key);
    SR_FUZZ_CHECK(header_cipher != nullptr);
    packet.resize(16);
    SR_FUZZ_CHECK(header_cipher->encrypt(std::span<const uint8_t, 16>(separate.data(), 16),
                                         std::span(packet).first<16>()));
    if (c.users) {
      const bool named_user = in.boolean();
      const crypto::UserHash named =
          crypto::userHash((named_user ? c.keys.user : c.keys.stranger).bytes());
      if (named_user) body_key = c.keys.user.bytes();
      std::array<uint8_t, crypto::kIdentityHeaderSize> eih;
      SR_FUZZ_CHECK(crypto::sealUdpIdentityHeader(
          *header_cipher, std::span<const uint8_t, 16>(separate.data(), 16), named, eih));
      packet.insert(packet.end(), eih.begin(), eih.end());
    }
    crypto::AeadPtr aead;
    SR_FUZZ_CHECK(
        crypto::keySession2022(c.method, provider(), body_key, std::span(separate).first(8), aead));
    const size_t at = packet.size();
    packet.resize(at + body.size() + crypto::kTagSize);
    SR_FUZZ_CHECK(aead->seal(std::span(separate).subspan(4), {}, body, packet.data() + at));
  }
  const Opened o = openAll(c, packet);
  if (o.status != Status2022::Ok) return;
  SR_FUZZ_CHECK(o.header.type == c.expectedType() &&
                crypto::timestampFresh(o.header.timestamp, c.now));
  const size_t fixed = fixed_at + 1 + 8 + (c.server ? 0 : 8) + 2;
  SR_FUZZ_CHECK(fixed + o.header.padding + o.header.address.size() + o.payload.size() ==
                body.size());
  SR_FUZZ_CHECK(std::equal(o.payload.begin(), o.payload.end(),
                           body.end() - static_cast<ptrdiff_t>(o.payload.size())));
}

void raw(FuzzInput& in, const Case& c) {
  const std::span<const uint8_t> rest = in.rest();
  openAll(c, std::vector<uint8_t>(rest.begin(), rest.end()));
}

}  // namespace
}  // namespace shadowrelay::fuzzing

SR_FUZZ_TARGET(in) {
  const size_t mode = in.pick(3);
  const crypto::MethodInfo& method = pickMethod(in, crypto::Edition::Aead2022);
  Keys2022 keys(method, in.byte() % 4);
  Case c{method, keys};
  c.server = in.boolean();
  c.users = c.server && crypto::usesSeparateHeader(method) && in.boolean();
  const ReceiverClock clock = ReceiverClock::read(in);
  c.now = clock.now;
  c.fresh = clock.fresh;
  switch (mode) {
    case 0:
      sealed(in, c);
      break;
    case 1:
      handSealed(in, c);
      break;
    default:
      raw(in, c);
  }
}
