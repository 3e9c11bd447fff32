// SPDX-License-Identifier: Apache-2.0
// Shadowsocks 2022 TCP streams (crypto/aead2022_stream), with SIP023 identity headers
// (crypto/identity_header), under random splits. The input picks a 2022 method, the receiver's
// clock skew, whether the server has users (AES methods), and a stream:
//  0 a request from Aead2022StreamEncoder (target, padding, chunk sizes from the input), maybe
//    cut short and/or one byte changed;
//  1 a response from the encoder, the same, maybe answering another request salt;
//  2 a request whose headers are sealed by hand with contents from the input (type, timestamp,
//    header length, variable header bytes, chunk length fields): the header parsers on
//    anything a key holder can send;
//  3 the same for a response;
//  4 raw bytes to a request or response decoder.
// Decoded in one piece and in pieces cut where the input says:
//  - the same status, plaintext, header and user either way (the decoder is split-proof);
//  - the plaintext is never longer than the stream, and a prefix of what was sent;
//  - an intact stream gives back its target, padding, user and plaintext, or exactly the error
//    its clock skew, unknown user or other request salt calls for; a changed byte is an error
//    unless the stream was also cut short;
//  - what a hand-sealed variable header decodes to is what its bytes say.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "crypto/aead2022.h"
#include "crypto/aead2022_stream.h"
#include "crypto/identity_header.h"
#include "crypto/key_derivation.h"
#include "tests/crypto/decode_in_pieces.h"
#include "tests/fuzz/crypto_fuzzing.h"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {
namespace {

using crypto::Aead2022StreamDecoder;
using crypto::Aead2022StreamEncoder;
using crypto::MasterKey;
using crypto::Status2022;

struct Decoded {
  Status2022 status = Status2022::Ok;
  std::vector<uint8_t> plain;
  bool authenticated = false;
  bool header_complete = false;
  crypto::RequestHeader2022 header;  // when header_complete
  std::optional<crypto::UserHash> user;

  bool operator==(const Decoded& o) const {
    return status == o.status && plain == o.plain && authenticated == o.authenticated &&
           header_complete == o.header_complete && user == o.user &&
           (!header_complete ||
            (header.target == o.header.target && header.padding == o.header.padding &&
             header.timestamp == o.header.timestamp));
  }
};

Decoded decode(Aead2022StreamDecoder decoder, const std::vector<uint8_t>& wire,
               const std::vector<size_t>& cuts, uint64_t now) {
  Decoded d;
  d.status = testing::decodeInPieces(
      wire, cuts, crypto::kMaxChunkPayload2022, Status2022::Ok,
      [&decoder, now](std::span<const uint8_t> in, std::span<uint8_t> out,
                      crypto::CodecProgress* progress) {
        return decoder.decode(in, out, now, progress);
      },
      &d.plain);
  d.authenticated = decoder.authenticated();
  d.header_complete = decoder.headerComplete();
  if (d.header_complete) d.header = decoder.requestHeader();
  d.user = decoder.user();
  return d;
}

/// Encodes `plain` in about `writes` calls; the encoder may hold its header back until data
/// comes (a response, or a request without padding), so an empty plaintext may give nothing.
std::vector<uint8_t> encode(Aead2022StreamEncoder& encoder, size_t writes,
                            std::span<const uint8_t> plain) {
  std::vector<uint8_t> wire;
  const size_t step = plain.size() / writes + 1;
  size_t pos = 0;
  do {
    const std::span<const uint8_t> part = plain.subspan(pos, std::min(step, plain.size() - pos));
    std::vector<uint8_t> out(encoder.maxEncodedSize(part.size()));
    crypto::CodecProgress progress;
    SR_FUZZ_CHECK(encoder.encode(part, out, kSenderClock, &progress));
    SR_FUZZ_CHECK(progress.consumed == part.size() && progress.produced <= out.size());
    wire.insert(wire.end(), out.begin(), out.begin() + progress.produced);
    pos += part.size();
  } while (pos < plain.size());
  return wire;
}

/// Seals units as a 2022 peer does (session subkey of key and salt, nonce counter from zero)
/// but without the encoder's rules, so that a header can hold anything.
class UnitSealer {
 public:
  UnitSealer(const crypto::MethodInfo& method, std::span<const uint8_t> key,
             std::span<const uint8_t> salt) {
    SR_FUZZ_CHECK(crypto::keySession2022(method, provider(), key, salt, aead_));
  }
  void seal(std::span<const uint8_t> plain, std::vector<uint8_t>& wire) {
    const size_t at = wire.size();
    wire.resize(at + plain.size() + crypto::kTagSize);
    SR_FUZZ_CHECK(aead_->seal(nonce_, {}, plain, wire.data() + at));
    crypto::incrementNonce(nonce_);
  }

 private:
  crypto::AeadPtr aead_;
  std::array<uint8_t, 12> nonce_{};
};

/// A timestamp from the input: mostly the sender's clock, sometimes any value.
uint64_t readTimestamp(FuzzInput& in) { return in.boolean() ? in.upTo(UINT64_MAX) : kSenderClock; }

/// A 16-bit length field: mostly the true length, sometimes any value.
uint16_t readLength(FuzzInput& in, size_t actual) {
  return in.boolean() ? static_cast<uint16_t>(in.upTo(UINT16_MAX)) : static_cast<uint16_t>(actual);
}

/// Up to four chunks with lengths and payloads from the input; true if every length field is
/// the true length.
bool sealChunks(FuzzInput& in, UnitSealer& sealer, std::vector<uint8_t>& wire,
                std::vector<uint8_t>* payloads) {
  bool honest = true;
  for (size_t n = in.pick(5); n > 0; --n) {
    const std::span<const uint8_t> payload = in.piece(4096);
    const uint16_t length = readLength(in, payload.size());
    honest = honest && length == payload.size();
    uint8_t field[2];
    crypto::storeBe16(field, length);
    sealer.seal(field, wire);
    sealer.seal(payload, wire);
    payloads->insert(payloads->end(), payload.begin(), payload.end());
  }
  return honest;
}

struct Case {
  const crypto::MethodInfo& method;
  Keys2022& keys;
  bool users = false;           // the server has users: requests carry an identity header
  uint64_t now = kSenderClock;  // the receiver's clock
  bool fresh = true;            // the receiver's clock is within the allowed skew of the sender's
};

Aead2022StreamDecoder requestDecoder(const Case& c) {
  return Aead2022StreamDecoder::request(c.method, provider(), c.keys.psk.bytes(),
                                        c.users ? &c.keys.users : nullptr);
}

/// Decodes whole and cut; checks they agree and the plaintext bounds; returns the whole one.
Decoded decodeBoth(Aead2022StreamDecoder (*make)(const Case&, std::span<const uint8_t>),
                   const Case& c, std::span<const uint8_t> request_salt,
                   const std::vector<uint8_t>& wire, const std::vector<uint16_t>& seeds) {
  const Decoded whole = decode(make(c, request_salt), wire, {}, c.now);
  const Decoded pieces = decode(make(c, request_salt), wire, cutsFor(seeds, wire.size()), c.now);
  SR_FUZZ_CHECK(whole == pieces);
  SR_FUZZ_CHECK(whole.plain.size() <= wire.size());
  return whole;
}

Aead2022StreamDecoder makeRequest(const Case& c, std::span<const uint8_t>) {
  return requestDecoder(c);
}

Aead2022StreamDecoder makeResponse(const Case& c, std::span<const uint8_t> request_salt) {
  return Aead2022StreamDecoder::response(c.method, provider(), c.keys.user.bytes(), request_salt);
}

void encodedRequest(FuzzInput& in, const Case& c) {
  const bool known = !c.users || in.byte() % 4 != 0;
  const crypto::SocksAddress target = readAddress(in);
  std::optional<size_t> padding;
  if (const size_t p = in.pick(3); p > 0) padding = p == 1 ? 0 : in.upTo(crypto::kMaxPaddingLength);
  const std::vector<uint8_t> salt = in.exact(c.method.salt_size);
  const size_t max_payload = 1 + in.upTo(crypto::kMaxChunkPayload2022 - 1);
  const size_t writes = 1 + in.pick(4);
  Damage damage = Damage::read(in);
  const std::vector<uint16_t> seeds = in.cutSeeds(12);
  const std::span<const uint8_t> plain = in.rest();

  std::vector<MasterKey> keys;
  if (c.users) keys.push_back(c.keys.psk);
  keys.push_back(c.users ? (known ? c.keys.user : c.keys.stranger) : c.keys.psk);
  auto encoder = Aead2022StreamEncoder::request(c.method, provider(), keys, target, padding, salt);
  SR_FUZZ_CHECK(encoder.valid());
  encoder.setMaxPayloadForTest(max_payload);
  std::vector<uint8_t> wire = encode(encoder, writes, plain);
  damage.apply(wire);
  const Decoded d = decodeBoth(makeRequest, c, {}, wire, seeds);
  SR_FUZZ_CHECK(isPrefix(d.plain, plain));
  if (damage.corrupted() && !damage.truncated()) SR_FUZZ_CHECK(d.status != Status2022::Ok);
  if (!damage.intact() || wire.empty()) return;
  const Status2022 expected = !known     ? Status2022::UnknownUser
                              : !c.fresh ? Status2022::StaleTimestamp
                                         : Status2022::Ok;
  SR_FUZZ_CHECK(d.status == expected);
  if (expected != Status2022::Ok) return;
  SR_FUZZ_CHECK(d.header_complete && d.header.target == target &&
                d.header.timestamp == kSenderClock);
  if (padding) SR_FUZZ_CHECK(d.header.padding == *padding);
  SR_FUZZ_CHECK(d.plain.size() == plain.size());
  if (c.users) SR_FUZZ_CHECK(d.user == crypto::userHash(c.keys.user.bytes()));
}

void encodedResponse(FuzzInput& in, const Case& c) {
  const std::vector<uint8_t> request_salt = in.exact(c.method.salt_size);
  const std::vector<uint8_t> salt = in.exact(c.method.salt_size);
  const bool other_request = in.byte() % 4 == 0;
  const size_t max_payload = 1 + in.upTo(crypto::kMaxChunkPayload2022 - 1);
  const size_t writes = 1 + in.pick(4);
  Damage damage = Damage::read(in);
  const std::vector<uint16_t> seeds = in.cutSeeds(12);
  const std::span<const uint8_t> plain = in.rest();

  auto encoder = Aead2022StreamEncoder::response(c.method, provider(), c.keys.user.bytes(),
                                                 request_salt, salt);
  SR_FUZZ_CHECK(encoder.valid());
  encoder.setMaxPayloadForTest(max_payload);
  std::vector<uint8_t> wire = encode(encoder, writes, plain);
  damage.apply(wire);
  std::vector<uint8_t> ours = request_salt;
  if (other_request) ours[0] ^= 1;
  const Decoded d = decodeBoth(makeResponse, c, ours, wire, seeds);
  SR_FUZZ_CHECK(isPrefix(d.plain, plain));
  if (damage.corrupted() && !damage.truncated()) SR_FUZZ_CHECK(d.status != Status2022::Ok);
  if (!damage.intact() || wire.empty()) return;
  const Status2022 expected = !c.fresh        ? Status2022::StaleTimestamp
                              : other_request ? Status2022::SaltMismatch
                                              : Status2022::Ok;
  SR_FUZZ_CHECK(d.status == expected);
  if (expected == Status2022::Ok) SR_FUZZ_CHECK(d.plain.size() == plain.size());
}

void craftedRequest(FuzzInput& in, const Case& c) {
  const std::vector<uint8_t> salt = in.exact(c.method.salt_size);
  std::vector<uint8_t> wire = salt;
  std::span<const uint8_t> session_key = c.keys.psk.bytes();
  if (c.users) {
    crypto::UserHash named{};
    switch (in.pick(3)) {
      case 0:
        named = crypto::userHash(c.keys.user.bytes());
        session_key = c.keys.user.bytes();
        break;
      case 1:
        named = crypto::userHash(c.keys.stranger.bytes());
        break;
      default: {
        const std::vector<uint8_t> bytes = in.exact(named.size());
        std::copy(bytes.begin(), bytes.end(), named.begin());
      }
    }
    std::array<uint8_t, crypto::kIdentityHeaderSize> eih;
    SR_FUZZ_CHECK(crypto::sealTcpIdentityHeader(provider(), c.keys.psk.bytes(), salt, named, eih));
    wire.insert(wire.end(), eih.begin(), eih.end());
  }
  UnitSealer sealer(c.method, session_key, salt);
  const uint8_t type = in.boolean() ? in.byte() : crypto::kClientHeaderType;
  const uint64_t timestamp = readTimestamp(in);
  const std::span<const uint8_t> variable = in.piece(UINT16_MAX);
  const uint16_t variable_length = readLength(in, variable.size());
  uint8_t fixed[1 + 8 + 2];
  fixed[0] = type;
  crypto::storeBe64(fixed + 1, timestamp);
  crypto::storeBe16(fixed + 9, variable_length);
  sealer.seal(fixed, wire);
  sealer.seal(variable, wire);
  std::vector<uint8_t> payloads;
  const bool honest = sealChunks(in, sealer, wire, &payloads) && variable_length == variable.size();
  const std::vector<uint16_t> seeds = in.cutSeeds(12);
  const Decoded d = decodeBoth(makeRequest, c, {}, wire, seeds);
  if (!d.header_complete) return;
  // The variable header: address | padding length | padding | initial payload.
  std::array<uint8_t, 1 + 1 + 255 + 2> address{};
  const size_t a = crypto::writeAddress(d.header.target, address);
  SR_FUZZ_CHECK(a > 0 && std::equal(address.begin(), address.begin() + a, variable.begin()));
  SR_FUZZ_CHECK(crypto::loadBe16(variable.data() + a) == d.header.padding);
  const std::span<const uint8_t> initial = variable.subspan(a + 2 + d.header.padding);
  SR_FUZZ_CHECK(isPrefix(initial, d.plain));
  if (honest && d.status == Status2022::Ok) {
    std::vector<uint8_t> all(initial.begin(), initial.end());
    all.insert(all.end(), payloads.begin(), payloads.end());
    SR_FUZZ_CHECK(d.plain == all);
  }
}

void craftedResponse(FuzzInput& in, const Case& c) {
  const std::vector<uint8_t> request_salt = in.exact(c.method.salt_size);
  const std::vector<uint8_t> salt = in.exact(c.method.salt_size);
  std::vector<uint8_t> wire = salt;
  UnitSealer sealer(c.method, c.keys.user.bytes(), salt);
  const uint8_t type = in.boolean() ? in.byte() : crypto::kServerHeaderType;
  const uint64_t timestamp = readTimestamp(in);
  const std::vector<uint8_t> answered = in.boolean() ? in.exact(salt.size()) : request_salt;
  const std::span<const uint8_t> first = in.piece(UINT16_MAX);
  const uint16_t first_length = readLength(in, first.size());
  std::vector<uint8_t> fixed(1 + 8 + salt.size() + 2);
  fixed[0] = type;
  crypto::storeBe64(&fixed[1], timestamp);
  std::copy(answered.begin(), answered.end(), fixed.begin() + 9);
  crypto::storeBe16(&fixed[9 + salt.size()], first_length);
  sealer.seal(fixed, wire);
  sealer.seal(first, wire);
  std::vector<uint8_t> payloads(first.begin(), first.end());
  const bool honest = sealChunks(in, sealer, wire, &payloads) && first_length == first.size();
  const std::vector<uint16_t> seeds = in.cutSeeds(12);
  const Decoded d = decodeBoth(makeResponse, c, request_salt, wire, seeds);
  if (honest) SR_FUZZ_CHECK(isPrefix(d.plain, payloads));
  if (d.authenticated) {
    SR_FUZZ_CHECK(type == crypto::kServerHeaderType && crypto::timestampFresh(timestamp, c.now) &&
                  answered == request_salt);
  }
  if (honest && d.status == Status2022::Ok) SR_FUZZ_CHECK(d.plain == payloads);
}

void raw(FuzzInput& in, const Case& c) {
  const bool response = in.boolean();
  const std::vector<uint8_t> request_salt = in.exact(c.method.salt_size);
  const std::vector<uint16_t> seeds = in.cutSeeds(12);
  const std::span<const uint8_t> rest = in.rest();
  const std::vector<uint8_t> wire(rest.begin(), rest.end());
  decodeBoth(response ? makeResponse : makeRequest, c, request_salt, wire, seeds);
}

}  // namespace
}  // namespace shadowrelay::fuzzing

SR_FUZZ_TARGET(in) {
  const size_t mode = in.pick(5);
  const crypto::MethodInfo& method = pickMethod(in, crypto::Edition::Aead2022);
  Keys2022 keys(method, in.byte() % 4);
  Case c{method, keys};
  c.users = crypto::usesSeparateHeader(method) && in.boolean();
  const ReceiverClock clock = ReceiverClock::read(in);
  c.now = clock.now;
  c.fresh = clock.fresh;
  switch (mode) {
    case 0:
      encodedRequest(in, c);
      break;
    case 1:
      encodedResponse(in, c);
      break;
    case 2:
      craftedRequest(in, c);
      break;
    case 3:
      craftedResponse(in, c);
      break;
    default:
      raw(in, c);
  }
}
