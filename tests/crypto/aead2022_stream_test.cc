// SPDX-License-Identifier: Apache-2.0
// Shadowsocks 2022 TCP streams: the request and response vectors of PROTOCOL.md §2.8
// (vectors.txt §4) through every provider, every split of the input, and each typed error.
#include "crypto/aead2022_stream.h"

#include <algorithm>
#include <random>
#include <set>

#include "crypto/key_derivation.h"
#include "gtest/gtest.h"
#include "tests/crypto/decode_in_pieces.h"
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
const char* const kGet = "GET / HTTP/1.0\r\n\r\n";
const char* const kOk = "HTTP/1.0 200 OK\r\n\r\n";
const std::vector<uint8_t>& kUpsk = testing::kUpsk16;
constexpr auto& method = testing::method2022;
constexpr auto& keys = testing::keyList;

SocksAddress exampleCom() { return SocksAddress::domain("example.com", 80); }

// vectors.txt: the client requests (salt | fixed | variable) to example.com:80 with P = 0 and
// the payload "GET / HTTP/1.0\r\n\r\n".
struct RequestVector {
  const char* method;
  std::vector<uint8_t> psk, salt;
  const char* fixed;
  const char* variable;

  std::vector<uint8_t> wire() const { return unhex(hex(salt) + fixed + variable); }
};

const std::vector<RequestVector>& requestVectors() {
  static const std::vector<RequestVector> v = {
      {"2022-blake3-aes-128-gcm", kPsk16, range(0x10, 16),
       "f62b42ac395d4aead07a5076ae261fd1d4082be96c7968100f4b5a",
       "e19e0c3dc0253175322489f04f23b87d6f7bc5813bd29ae35227a4d97b65f0bc"
       "ad93da44e50c74403d6f5bd23c459c3139f4da"},
      {"2022-blake3-aes-256-gcm", kPsk32, range(0x20, 32),
       "aa4efbd2198e0f750c8259d75fdcf9267cd9efb410f77988210027",
       "e906b5d46f86e2a0c6ab7b88332b7c3b3036296df22c2218c625fd57baef7e52"
       "1e3b73050074b712f37be1364c70cbb16f2469"},
      {"2022-blake3-chacha20-poly1305", kPsk32, range(0x20, 32),
       "aaf3381628f811755309cc4e683c544c059aa2ff437830d04fbe48",
       "a4da95fd926cbf54e283efab5a094749cda7bff2ae7895a45de3cdc1ca907bc1"
       "e8b4ad62d708f606d699acb7d0c30e54797d7a"},
  };
  return v;
}

// vectors.txt: the server's response (server salt 404142..4f) to the aes-128 request.
const std::vector<uint8_t> kResponseWire = unhex(
    "404142434445464748494a4b4c4d4e4f"
    "b2ccc846e965a2bc8765884db601efbc62c17ec34d8ef9409c17499283f55c7f9f894ce1a9f7c371f0f5e1"
    "c5dd0243a222c0cc042bb36f731cc3f79677cd9847f38871443c453ac97052a9014f29");

std::vector<uint8_t> encodeAll(Aead2022StreamEncoder& enc, const std::vector<uint8_t>& plain,
                               uint64_t now = kTs) {
  std::vector<uint8_t> out(enc.maxEncodedSize(plain.size()));
  CodecProgress p;
  EXPECT_TRUE(enc.encode(plain, out, now, &p));
  EXPECT_EQ(p.consumed, plain.size());
  EXPECT_LE(p.produced, out.size());
  out.resize(p.produced);
  return out;
}

Status2022 decodeSplit(Aead2022StreamDecoder& dec, const std::vector<uint8_t>& wire,
                       const std::vector<size_t>& cuts, std::vector<uint8_t>* plain,
                       uint64_t now = kTs, size_t out_capacity = 4096) {
  return testing::decodeInPieces(
      wire, cuts, out_capacity, Status2022::Ok,
      [&](std::span<const uint8_t> in, std::span<uint8_t> out, CodecProgress* p) {
        return dec.decode(in, out, now, p);
      },
      plain);
}

// Every way to cut `wire` once, and twice, plus byte by byte.
std::vector<std::vector<size_t>> everySplit(size_t n) {
  std::vector<std::vector<size_t>> out = {{}};
  std::vector<size_t> bytes;
  for (size_t i = 1; i < n; ++i) bytes.push_back(i);
  out.push_back(bytes);
  for (size_t a = 0; a <= n; ++a) {
    out.push_back({a});
    for (size_t b = a + 1; b <= n; ++b) out.push_back({a, b});
  }
  return out;
}

// A 2022 stream built here from the primitives, not the encoder: salt, then each unit sealed
// with the session subkey of `psk` and the next nonce.
std::vector<uint8_t> sealUnits(const MethodInfo& m, const AeadProvider& p,
                               const std::vector<uint8_t>& psk, const std::vector<uint8_t>& salt,
                               const std::vector<std::vector<uint8_t>>& units) {
  std::vector<uint8_t> subkey(m.key_size);
  sessionSubkey2022(psk, salt, subkey);
  AeadPtr aead = p.create(m.algorithm, subkey);
  EXPECT_NE(aead, nullptr);
  std::vector<uint8_t> wire = salt;
  std::vector<uint8_t> nonce(12, 0);
  for (const auto& unit : units) {
    std::vector<uint8_t> sealed(unit.size() + kTagSize);
    EXPECT_TRUE(aead->seal(nonce, {}, unit, sealed.data()));
    wire.insert(wire.end(), sealed.begin(), sealed.end());
    incrementNonce(nonce);
  }
  return wire;
}

std::vector<uint8_t> fixedHeader(uint8_t type, uint64_t ts, size_t length) {
  std::vector<uint8_t> h(11);
  h[0] = type;
  storeBe64(&h[1], ts);
  storeBe16(&h[9], static_cast<uint16_t>(length));
  return h;
}

std::vector<uint8_t> be16(size_t v) {
  return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// ---- Known answers ----

TEST(Aead2022StreamTest, RequestEncoderMatchesSharedVectors) {
  for (const AeadProvider* p : allProviders()) {
    for (const RequestVector& v : requestVectors()) {
      SCOPED_TRACE(std::string(p->name()) + " " + v.method);
      auto enc = Aead2022StreamEncoder::request(method(v.method), *p, keys({v.psk}), exampleCom(),
                                                /*padding=*/0, v.salt);
      ASSERT_TRUE(enc.valid());
      EXPECT_EQ(hex(encodeAll(enc, bytesOf(kGet))), hex(v.wire()));
      EXPECT_TRUE(enc.headerSent());
    }
  }
}

TEST(Aead2022StreamTest, ResponseEncoderMatchesSharedVector) {
  for (const AeadProvider* p : allProviders()) {
    SCOPED_TRACE(std::string(p->name()));
    auto enc = Aead2022StreamEncoder::response(method("2022-blake3-aes-128-gcm"), *p, kPsk16,
                                               range(0x10, 16), range(0x40, 16));
    ASSERT_TRUE(enc.valid());
    EXPECT_EQ(hex(encodeAll(enc, bytesOf(kOk))), hex(kResponseWire));
  }
}

// The server's side of the vectors, cut every way once and twice and byte by byte: the same
// header, payload and state each time.
TEST(Aead2022StreamTest, RequestDecoderReadsSharedVectorsForEverySplit) {
  for (const AeadProvider* p : allProviders()) {
    for (const RequestVector& v : requestVectors()) {
      SCOPED_TRACE(std::string(p->name()) + " " + v.method);
      const std::vector<uint8_t> wire = v.wire();
      for (const std::vector<size_t>& cuts : everySplit(wire.size())) {
        auto dec = Aead2022StreamDecoder::request(method(v.method), *p, v.psk);
        std::vector<uint8_t> plain;
        ASSERT_EQ(decodeSplit(dec, wire, cuts, &plain), Status2022::Ok);
        ASSERT_EQ(std::string(plain.begin(), plain.end()), kGet);
        ASSERT_TRUE(dec.headerComplete());
        ASSERT_EQ(dec.requestHeader().target, exampleCom());
        ASSERT_EQ(dec.requestHeader().padding, 0u);
        ASSERT_EQ(dec.timestamp(), kTs);
        ASSERT_EQ(hex(dec.salt()), hex(v.salt));
        ASSERT_FALSE(dec.user().has_value());
        ASSERT_EQ(dec.nextUnitSize(), 2u + 16u);  // a length unit is next
      }
    }
  }
}

TEST(Aead2022StreamTest, ResponseDecoderReadsSharedVectorForEverySplit) {
  const MethodInfo& m = method("2022-blake3-aes-128-gcm");
  for (const AeadProvider* p : allProviders()) {
    SCOPED_TRACE(std::string(p->name()));
    for (const std::vector<size_t>& cuts : everySplit(kResponseWire.size())) {
      auto dec = Aead2022StreamDecoder::response(m, *p, kPsk16, range(0x10, 16));
      EXPECT_EQ(dec.nextUnitSize(), 16u + 27u + 16u);
      std::vector<uint8_t> plain;
      ASSERT_EQ(decodeSplit(dec, kResponseWire, cuts, &plain), Status2022::Ok);
      ASSERT_EQ(std::string(plain.begin(), plain.end()), kOk);
      ASSERT_TRUE(dec.authenticated());
      ASSERT_EQ(dec.timestamp(), kTs);
      ASSERT_EQ(hex(dec.salt()), hex(range(0x40, 16)));
    }
    // The response must echo our request salt (§2.4).
    auto other = Aead2022StreamDecoder::response(m, *p, kPsk16, range(0x11, 16));
    std::vector<uint8_t> plain;
    EXPECT_EQ(decodeSplit(other, kResponseWire, {}, &plain), Status2022::SaltMismatch);
    EXPECT_TRUE(plain.empty());
    // A response is not a request, and the other way round (the type byte, or a tag in the
    // wrong place because the header sizes differ).
    auto as_request = Aead2022StreamDecoder::request(m, *p, kPsk16);
    EXPECT_NE(decodeSplit(as_request, kResponseWire, {}, &plain), Status2022::Ok);
    auto as_response = Aead2022StreamDecoder::response(m, *p, kPsk16, range(0x10, 16));
    EXPECT_NE(decodeSplit(as_response, requestVectors()[0].wire(), {}, &plain), Status2022::Ok);
    EXPECT_TRUE(plain.empty());
  }
}

// The first unit is what a server reads in one go: salt + [EIH] + 11 + 16 (§2.4).
TEST(Aead2022StreamTest, FirstUnitIsTheDetectionPreventionReadSize) {
  const AeadProvider& p = opensslProvider();
  UserKeyTable users;
  EXPECT_EQ(
      Aead2022StreamDecoder::request(method("2022-blake3-aes-128-gcm"), p, kPsk16).nextUnitSize(),
      43u);
  EXPECT_EQ(
      Aead2022StreamDecoder::request(method("2022-blake3-aes-256-gcm"), p, kPsk32).nextUnitSize(),
      59u);
  EXPECT_EQ(Aead2022StreamDecoder::request(method("2022-blake3-aes-128-gcm"), p, kPsk16, &users)
                .nextUnitSize(),
            59u);
  EXPECT_EQ(
      Aead2022StreamDecoder::response(method("2022-blake3-aes-256-gcm"), p, kPsk32, range(0, 32))
          .nextUnitSize(),
      91u);
}

// ---- Timestamps, tampering, truncation, sticky errors ----

TEST(Aead2022StreamTest, TimestampMustBeWithinThirtySeconds) {
  const RequestVector& v = requestVectors()[0];
  for (const AeadProvider* p : allProviders()) {
    for (uint64_t now : {kTs - 30, kTs - 1, kTs, kTs + 1, kTs + 30}) {
      auto dec = Aead2022StreamDecoder::request(method(v.method), *p, v.psk);
      std::vector<uint8_t> plain;
      EXPECT_EQ(decodeSplit(dec, v.wire(), {}, &plain, now), Status2022::Ok) << now;
    }
    for (uint64_t now : {kTs - 31, kTs + 31, uint64_t{0}, kTs + 86400}) {
      auto dec = Aead2022StreamDecoder::request(method(v.method), *p, v.psk);
      std::vector<uint8_t> plain;
      EXPECT_EQ(decodeSplit(dec, v.wire(), {}, &plain, now), Status2022::StaleTimestamp) << now;
      EXPECT_TRUE(plain.empty());
      EXPECT_FALSE(dec.authenticated());
    }
    auto dec = Aead2022StreamDecoder::response(method(v.method), *p, kPsk16, range(0x10, 16));
    std::vector<uint8_t> plain;
    EXPECT_EQ(decodeSplit(dec, kResponseWire, {}, &plain, kTs + 31), Status2022::StaleTimestamp);
  }
}

TEST(Aead2022StreamTest, AnyFlippedByteFailsAndNothingIsReleased) {
  for (const AeadProvider* p : allProviders()) {
    for (const RequestVector& v : requestVectors()) {
      SCOPED_TRACE(std::string(p->name()) + " " + v.method);
      const std::vector<uint8_t> wire = v.wire();
      for (size_t i = 0; i < wire.size(); ++i) {
        std::vector<uint8_t> bad = wire;
        bad[i] ^= 0x01;
        auto dec = Aead2022StreamDecoder::request(method(v.method), *p, v.psk);
        std::vector<uint8_t> plain;
        EXPECT_EQ(decodeSplit(dec, bad, {}, &plain), Status2022::AuthFailed) << i;
        EXPECT_TRUE(plain.empty()) << i;
      }
    }
  }
}

TEST(Aead2022StreamTest, TruncatedStreamReleasesNothingAndErrorsAreSticky) {
  const RequestVector& v = requestVectors()[1];
  const MethodInfo& m = method(v.method);
  const std::vector<uint8_t> wire = v.wire();
  for (const AeadProvider* p : allProviders()) {
    for (size_t cut = 0; cut < wire.size(); ++cut) {
      auto dec = Aead2022StreamDecoder::request(m, *p, v.psk);
      std::vector<uint8_t> plain;
      EXPECT_EQ(decodeSplit(dec, {wire.begin(), wire.begin() + cut}, {}, &plain), Status2022::Ok);
      EXPECT_TRUE(plain.empty());
      EXPECT_EQ(dec.authenticated(), cut >= 32 + 11 + 16) << cut;
      EXPECT_FALSE(dec.headerComplete());
    }
    auto wrong = Aead2022StreamDecoder::request(m, *p, range(1, 32));
    std::vector<uint8_t> plain;
    EXPECT_EQ(decodeSplit(wrong, wire, {}, &plain), Status2022::AuthFailed);
    std::vector<uint8_t> out(100);
    CodecProgress progress;
    EXPECT_EQ(wrong.decode(wire, out, kTs, &progress), Status2022::AuthFailed);
    EXPECT_EQ(progress.consumed, 0u);
    EXPECT_EQ(progress.produced, 0u);
  }
}

// A decoder with less output room than the variable header needs stops without writing past it.
TEST(Aead2022StreamTest, DecoderStopsWhenOutputCannotHoldTheNextUnit) {
  const RequestVector& v = requestVectors()[0];
  for (const AeadProvider* p : allProviders()) {
    auto dec = Aead2022StreamDecoder::request(method(v.method), *p, v.psk);
    const std::vector<uint8_t> wire = v.wire();
    std::vector<uint8_t> out(34);  // H = 35
    CodecProgress progress;
    ASSERT_EQ(dec.decode(wire, out, kTs, &progress), Status2022::Ok);
    EXPECT_EQ(progress.consumed, 16u + 27u);
    EXPECT_EQ(progress.produced, 0u);
    EXPECT_EQ(dec.nextOutputSize(), 35u);
    std::vector<uint8_t> room(35);
    ASSERT_EQ(dec.decode(std::span(wire).subspan(43), room, kTs, &progress), Status2022::Ok);
    EXPECT_EQ(std::string(room.begin(), room.begin() + progress.produced), kGet);
  }
}

// ---- Each typed error, from headers sealed here ----

TEST(Aead2022StreamTest, TypedErrorsForBadHeaders) {
  const MethodInfo& m = method("2022-blake3-aes-128-gcm");
  const std::vector<uint8_t> salt = range(0x10, 16);
  const std::vector<uint8_t> ipv4 = unhex("01 08080808 0035");
  struct Case {
    const char* what;
    std::vector<std::vector<uint8_t>> units;
    Status2022 want;
  };
  auto request = [&](const std::vector<uint8_t>& variable) {
    return std::vector<std::vector<uint8_t>>{fixedHeader(0, kTs, variable.size()), variable};
  };
  const std::vector<Case> cases = {
      {"type 1 on a request",
       {fixedHeader(1, kTs, 9), cat({ipv4, be16(0), {'x'}})},
       Status2022::BadType},
      {"type 7", {fixedHeader(7, kTs, 9), cat({ipv4, be16(0), {'x'}})}, Status2022::BadType},
      {"31 s old",
       {fixedHeader(0, kTs - 31, 9), cat({ipv4, be16(0), {'x'}})},
       Status2022::StaleTimestamp},
      {"H = 0", {fixedHeader(0, kTs, 0)}, Status2022::BadLength},
      {"H = 6", {fixedHeader(0, kTs, 6)}, Status2022::BadLength},
      {"unknown ATYP", request(unhex("05 08080808 0035 0000 78")), Status2022::BadAddress},
      {"host past the header", request(unhex("03 20 6578616d706c65 0050 0000")),
       Status2022::BadAddress},
      {"empty host", request(unhex("03 00 0050 0000 7878")), Status2022::BadAddress},
      {"no padding length", request(ipv4), Status2022::BadHeader},
      {"padding past the header", request(cat({ipv4, be16(10), {0, 0, 0}})), Status2022::BadHeader},
      {"neither padding nor payload", request(cat({ipv4, be16(0)})), Status2022::BadHeader},
  };
  for (const AeadProvider* p : allProviders()) {
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(p->name()) + ": " + c.what);
      const std::vector<uint8_t> wire = sealUnits(m, *p, kPsk16, salt, c.units);
      for (const std::vector<size_t>& cuts : everySplit(wire.size())) {
        auto dec = Aead2022StreamDecoder::request(m, *p, kPsk16);
        std::vector<uint8_t> plain;
        ASSERT_EQ(decodeSplit(dec, wire, cuts, &plain), c.want);
        ASSERT_TRUE(plain.empty());
      }
    }
    // A response of type 0.
    std::vector<uint8_t> fixed = cat({{0}, unhex("000000006553f100"), salt, be16(1)});
    auto dec = Aead2022StreamDecoder::response(m, *p, kPsk16, salt);
    std::vector<uint8_t> plain;
    EXPECT_EQ(
        decodeSplit(dec, sealUnits(m, *p, kPsk16, range(0x40, 16), {fixed, {'x'}}), {}, &plain),
        Status2022::BadType);
  }
}

// Padding without payload, empty chunks, and an error after good chunks: what came before the
// bad unit is released and counted, for every split.
TEST(Aead2022StreamTest, PaddingOnlyHeaderEmptyChunksAndAnErrorAfterData) {
  const MethodInfo& m = method("2022-blake3-aes-128-gcm");
  const std::vector<uint8_t> salt = range(0x10, 16);
  const std::vector<uint8_t> variable = unhex("01 7f000001 1f90 0003 000000");
  for (const AeadProvider* p : allProviders()) {
    const std::vector<uint8_t> wire = sealUnits(m, *p, kPsk16, salt,
                                                {fixedHeader(0, kTs, variable.size()),
                                                 variable,
                                                 be16(0),
                                                 {},
                                                 be16(3),
                                                 bytesOf("abc"),
                                                 be16(2),
                                                 bytesOf("de")});
    for (const std::vector<size_t>& cuts : everySplit(wire.size())) {
      auto dec = Aead2022StreamDecoder::request(m, *p, kPsk16);
      std::vector<uint8_t> plain;
      ASSERT_EQ(decodeSplit(dec, wire, cuts, &plain), Status2022::Ok);
      ASSERT_EQ(std::string(plain.begin(), plain.end()), "abcde");
      ASSERT_EQ(dec.requestHeader().padding, 3u);
      ASSERT_EQ(dec.requestHeader().target.toString(), "127.0.0.1:8080");
    }
    std::vector<uint8_t> bad = wire;
    bad.back() ^= 0x40;  // the tag of "de"
    for (const std::vector<size_t>& cuts : everySplit(bad.size())) {
      auto dec = Aead2022StreamDecoder::request(m, *p, kPsk16);
      std::vector<uint8_t> plain;
      ASSERT_EQ(decodeSplit(dec, bad, cuts, &plain), Status2022::AuthFailed);
      ASSERT_EQ(std::string(plain.begin(), plain.end()), "abc");
    }
  }
}

// ---- SIP023 identity headers ----

TEST(Aead2022StreamTest, IdentityHeaderRequestMatchesVectorAndFindsTheUser) {
  const MethodInfo& m = method("2022-blake3-aes-128-gcm");
  const std::vector<uint8_t> salt = range(0x10, 16);
  UserKeyTable users;
  users.add(range(0x80, 16));
  users.add(kUpsk);
  for (const AeadProvider* p : allProviders()) {
    SCOPED_TRACE(std::string(p->name()));
    auto enc = Aead2022StreamEncoder::request(m, *p, keys({kPsk16, kUpsk}), exampleCom(), 0, salt);
    ASSERT_TRUE(enc.valid());
    const std::vector<uint8_t> wire = encodeAll(enc, bytesOf(kGet));
    // salt | EIH (vectors.txt: TCP EIH) | the request keyed with the uPSK's session subkey.
    EXPECT_EQ(hex({wire.data(), 16}), hex(salt));
    EXPECT_EQ(hex({wire.data() + 16, 16}), "5ab8fe05371fe01e73004fda29f18e1c");
    const std::vector<uint8_t> by_upsk =
        sealUnits(m, *p, kUpsk, salt,
                  {unhex("00 000000006553f100 0023"),
                   cat({unhex("030b6578616d706c652e636f6d0050 0000"), bytesOf(kGet)})});
    EXPECT_EQ(hex({wire.data() + 32, wire.size() - 32}),
              hex({by_upsk.data() + 16, by_upsk.size() - 16}));
    for (const std::vector<size_t>& cuts : everySplit(wire.size())) {
      auto dec = Aead2022StreamDecoder::request(m, *p, kPsk16, &users);
      std::vector<uint8_t> plain;
      ASSERT_EQ(decodeSplit(dec, wire, cuts, &plain), Status2022::Ok);
      ASSERT_EQ(std::string(plain.begin(), plain.end()), kGet);
      ASSERT_TRUE(dec.user().has_value());
      ASSERT_EQ(hex(*dec.user()), "9b4a4b2e89211e24036becf02bed2372");
      ASSERT_EQ(dec.requestHeader().target, exampleCom());
    }
    // A server without users reads the EIH as its fixed header; one without this user: unknown.
    auto no_users = Aead2022StreamDecoder::request(m, *p, kPsk16);
    std::vector<uint8_t> plain;
    EXPECT_EQ(decodeSplit(no_users, wire, {}, &plain), Status2022::AuthFailed);
    UserKeyTable others;
    others.add(range(0x80, 16));
    auto unknown = Aead2022StreamDecoder::request(m, *p, kPsk16, &others);
    EXPECT_EQ(decodeSplit(unknown, wire, {}, &plain), Status2022::UnknownUser);
    EXPECT_FALSE(unknown.authenticated());
    // The wrong server key names nobody either.
    auto wrong_key = Aead2022StreamDecoder::request(m, *p, range(1, 16), &users);
    EXPECT_EQ(decodeSplit(wrong_key, wire, {}, &plain), Status2022::UnknownUser);
    EXPECT_TRUE(plain.empty());
  }
}

// iPSK_a:iPSK_b:uPSK: one header per hop; the last hop reads the stream without the first one.
TEST(Aead2022StreamTest, IdentityHeaderChainForRelays) {
  const MethodInfo& m = method("2022-blake3-aes-256-gcm");
  const std::vector<uint8_t> ipsk_a = range(0x30, 32);
  const std::vector<uint8_t> ipsk_b = range(0x60, 32);
  const std::vector<uint8_t> upsk = range(0x90, 32);
  const std::vector<uint8_t> salt = range(0xc0, 32);
  for (const AeadProvider* p : allProviders()) {
    auto enc = Aead2022StreamEncoder::request(m, *p, keys({ipsk_a, ipsk_b, upsk}), exampleCom(),
                                              std::nullopt, salt);
    ASSERT_TRUE(enc.valid());
    const std::vector<uint8_t> wire = encodeAll(enc, bytesOf(kGet));
    std::array<uint8_t, 16> eih_a{};
    std::array<uint8_t, 16> eih_b{};
    ASSERT_TRUE(sealTcpIdentityHeader(*p, ipsk_a, salt, userHash(ipsk_b), eih_a));
    ASSERT_TRUE(sealTcpIdentityHeader(*p, ipsk_b, salt, userHash(upsk), eih_b));
    EXPECT_EQ(hex({wire.data() + 32, 16}), hex(eih_a));
    EXPECT_EQ(hex({wire.data() + 48, 16}), hex(eih_b));
    UserKeyTable first_hop;
    first_hop.add(ipsk_b);
    auto relay = Aead2022StreamDecoder::request(m, *p, ipsk_a, &first_hop);
    std::vector<uint8_t> unit(wire.begin(), wire.begin() + relay.nextUnitSize());
    std::vector<uint8_t> plain;
    // The relay finds the next hop; what follows is not keyed for it.
    EXPECT_EQ(decodeSplit(relay, unit, {}, &plain), Status2022::AuthFailed);
    UserKeyTable users;
    users.add(upsk);
    std::vector<uint8_t> forwarded(wire.begin(), wire.begin() + 32);
    forwarded.insert(forwarded.end(), wire.begin() + 48, wire.end());
    auto server = Aead2022StreamDecoder::request(m, *p, ipsk_b, &users);
    ASSERT_EQ(decodeSplit(server, forwarded, {}, &plain), Status2022::Ok);
    EXPECT_EQ(std::string(plain.begin(), plain.end()), kGet);
    EXPECT_EQ(*server.user(), userHash(upsk));
  }
  // ChaCha has no identity headers.
  EXPECT_FALSE(Aead2022StreamEncoder::request(method("2022-blake3-chacha20-poly1305"),
                                              opensslProvider(), keys({ipsk_a, upsk}), exampleCom())
                   .valid());
}

// ---- Encoder behaviour ----

TEST(Aead2022StreamTest, RequestWithoutDataIsPaddedAndExplicitZeroPaddingWaitsForData) {
  const MethodInfo& m = method("2022-blake3-aes-256-gcm");
  const AeadProvider& p = opensslProvider();
  std::set<size_t> paddings;
  for (int i = 0; i < 20; ++i) {
    auto enc = Aead2022StreamEncoder::request(m, p, keys({kPsk32}), exampleCom());
    const std::vector<uint8_t> wire = encodeAll(enc, {});
    ASSERT_TRUE(enc.headerSent());
    auto dec = Aead2022StreamDecoder::request(m, p, kPsk32);
    std::vector<uint8_t> plain;
    ASSERT_EQ(decodeSplit(dec, wire, {}, &plain), Status2022::Ok);
    EXPECT_TRUE(plain.empty());
    ASSERT_TRUE(dec.headerComplete());
    EXPECT_GE(dec.requestHeader().padding, 1u);
    EXPECT_LE(dec.requestHeader().padding, kMaxPaddingLength);
    paddings.insert(dec.requestHeader().padding);
  }
  EXPECT_GT(paddings.size(), 1u);
  // Padding given as 0: nothing until the first byte of data.
  auto enc = Aead2022StreamEncoder::request(m, p, keys({kPsk32}), exampleCom(), 0);
  std::vector<uint8_t> out(1000);
  CodecProgress progress;
  ASSERT_TRUE(enc.encode({}, out, kTs, &progress));
  EXPECT_EQ(progress.produced, 0u);
  EXPECT_FALSE(enc.headerSent());
  // Data: no padding when the caller did not ask for any.
  auto with_data = Aead2022StreamEncoder::request(m, p, keys({kPsk32}), exampleCom());
  auto dec = Aead2022StreamDecoder::request(m, p, kPsk32);
  std::vector<uint8_t> plain;
  ASSERT_EQ(decodeSplit(dec, encodeAll(with_data, bytesOf("x")), {}, &plain), Status2022::Ok);
  EXPECT_EQ(dec.requestHeader().padding, 0u);
  // The response waits for data too.
  auto response = Aead2022StreamEncoder::response(m, p, kPsk32, range(0, 32));
  ASSERT_TRUE(response.encode({}, out, kTs, &progress));
  EXPECT_EQ(progress.produced, 0u);
  EXPECT_FALSE(response.headerSent());
}

TEST(Aead2022StreamTest, HeadersAreAllOrNothingAndChunksStayWithin0xFFFF) {
  const MethodInfo& m = method("2022-blake3-aes-128-gcm");
  const AeadProvider& p = opensslProvider();
  // salt 16 + fixed 27 + address 15 + P 2 + tag 16 + 1 byte of payload = 77.
  for (size_t room : {0u, 1u, 43u, 76u, 77u, 80u}) {
    auto enc = Aead2022StreamEncoder::request(m, p, keys({kPsk16}), exampleCom(), 0);
    std::vector<uint8_t> out(room);
    CodecProgress progress;
    ASSERT_TRUE(enc.encode(bytesOf(kGet), out, kTs, &progress));
    EXPECT_EQ(enc.headerSent(), room >= 77u) << room;
    EXPECT_EQ(progress.consumed, room >= 77u ? room - 76u : 0u) << room;
    EXPECT_EQ(progress.produced, room >= 77u ? room : 0u) << room;
  }
  std::vector<uint8_t> plain(300000);
  std::mt19937 rng(3);
  for (auto& x : plain) x = static_cast<uint8_t>(rng());
  auto enc = Aead2022StreamEncoder::request(m, p, keys({kPsk16}), exampleCom());
  const std::vector<uint8_t> wire = encodeAll(enc, plain);
  // The variable header takes 0xFFFF - 17 bytes of payload; the rest goes in full chunks.
  const size_t first = 0xFFFF - 17;
  const size_t rest = plain.size() - first;
  const size_t chunks = (rest + 0xFFFE) / 0xFFFF;
  EXPECT_EQ(wire.size(), 16 + 27 + 0xFFFF + 16 + rest + chunks * 34);
  auto dec = Aead2022StreamDecoder::request(m, p, kPsk16);
  std::vector<uint8_t> got;
  ASSERT_EQ(decodeSplit(dec, wire, {}, &got, kTs, kMaxChunkPayload2022), Status2022::Ok);
  EXPECT_EQ(got, plain);
}

// Both directions of every 2022 method between every pair of providers, written in irregular
// pieces and read in random splits with a small output buffer.
TEST(Aead2022StreamTest, RandomRoundTripsForEveryMethodAndProviderPair) {
  std::mt19937 rng(2022);
  for (const MethodInfo& m : methodTable()) {
    if (m.edition != Edition::Aead2022) continue;
    for (const AeadProvider* a : allProviders()) {
      for (const AeadProvider* b : allProviders()) {
        SCOPED_TRACE(std::string(m.name) + " " + std::string(a->name()) + "->" +
                     std::string(b->name()));
        std::vector<uint8_t> psk(m.key_size);
        for (auto& x : psk) x = static_cast<uint8_t>(rng());
        std::vector<uint8_t> plain(150000);
        for (auto& x : plain) x = static_cast<uint8_t>(rng());
        const SocksAddress target = SocksAddress::ipv6({1, 2, 3}, 443);
        auto request = Aead2022StreamEncoder::request(m, *a, keys({psk}), target);
        std::vector<uint8_t> request_wire;
        auto response = Aead2022StreamEncoder::response(m, *b, psk, request.salt());
        std::vector<uint8_t> response_wire;
        for (size_t r = 0; r < plain.size();) {
          const size_t n = std::min<size_t>(plain.size() - r, 1 + rng() % 90000);
          const std::vector<uint8_t> piece(plain.begin() + r, plain.begin() + r + n);
          for (auto* enc : {&request, &response}) {
            const std::vector<uint8_t> out = encodeAll(*enc, piece);
            auto& wire = enc == &request ? request_wire : response_wire;
            wire.insert(wire.end(), out.begin(), out.end());
          }
          r += n;
        }
        for (int round = 0; round < 3; ++round) {
          std::vector<size_t> cuts;
          for (int i = 0; i < 40; ++i) cuts.push_back(rng() % request_wire.size());
          std::sort(cuts.begin(), cuts.end());
          auto server = Aead2022StreamDecoder::request(m, *b, psk);
          std::vector<uint8_t> got;
          ASSERT_EQ(decodeSplit(server, request_wire, cuts, &got, kTs, kMaxChunkPayload2022),
                    Status2022::Ok);
          ASSERT_EQ(got, plain);
          ASSERT_EQ(server.requestHeader().target, target);
          for (size_t& cut : cuts) cut = cut % response_wire.size();
          std::sort(cuts.begin(), cuts.end());
          auto client = Aead2022StreamDecoder::response(m, *a, psk, request.salt());
          got.clear();
          ASSERT_EQ(decodeSplit(client, response_wire, cuts, &got, kTs, kMaxChunkPayload2022),
                    Status2022::Ok);
          ASSERT_EQ(got, plain);
        }
      }
    }
  }
}

}  // namespace
}  // namespace shadowrelay::crypto
