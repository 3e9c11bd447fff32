// SPDX-License-Identifier: Apache-2.0
#include "crypto/aead2022_udp.h"

#include <algorithm>
#include <cstring>

#include "crypto/random_pool.h"

namespace shadowrelay::crypto {
namespace {

constexpr size_t kSeparateHeaderSize = 16;
constexpr size_t kXChaChaNonceSize = 24;
constexpr size_t kSessionFieldsSize = 8 + 8;  // ChaCha: session ID and packet ID in the body

// The body's fields before the padding: [session ID | packet ID] | type | timestamp
// | [client session ID] | P.
size_t fixedBodySize(bool xchacha, uint8_t type) {
  return (xchacha ? kSessionFieldsSize : 0) + 1 + 8 + (type == kServerHeaderType ? 8 : 0) + 2;
}

// Lays out the body's plaintext at `out`; `address_size` is header.address.size().
// @return its size, or 0 if the address does not encode.
size_t writeBody(const PacketHeader2022& header, bool xchacha, std::span<const uint8_t> payload,
                 size_t address_size, uint8_t* out) {
  uint8_t* p = out;
  if (xchacha) {
    std::memcpy(p, header.session_id.data(), header.session_id.size());
    storeBe64(p + 8, header.packet_id);
    p += kSessionFieldsSize;
  }
  *p++ = header.type;
  storeBe64(p, header.timestamp);
  p += 8;
  if (header.type == kServerHeaderType) {
    std::memcpy(p, header.client_session_id.data(), header.client_session_id.size());
    p += 8;
  }
  storeBe16(p, static_cast<uint16_t>(header.padding));
  p += 2;
  std::memset(p, 0, header.padding);
  p += header.padding;
  if (writeAddress(header.address, {p, address_size}) != address_size) {
    return 0;
  }
  p += address_size;
  if (!payload.empty()) {
    std::memcpy(p, payload.data(), payload.size());
  }
  return static_cast<size_t>(p - out) + payload.size();
}

std::array<uint8_t, kSeparateHeaderSize> separateHeader(const SessionId& session,
                                                        uint64_t packet_id) {
  std::array<uint8_t, kSeparateHeaderSize> out;
  std::copy(session.begin(), session.end(), out.begin());
  storeBe64(out.data() + session.size(), packet_id);
  return out;
}

}  // namespace

// ---- Udp2022Sealer ----

Udp2022Sealer::Udp2022Sealer(const MethodInfo& method, const AeadProvider& provider,
                             std::span<const MasterKey> keys)
    : method_(method), provider_(provider) {
  if (keys.empty()) {
    return;
  }
  for (const MasterKey& key : keys) {
    if (key.size() != method.key_size) {
      return;
    }
  }
  if (usesXChaChaPackets(method)) {
    if (keys.size() == 1) {
      aead_ = provider.create(AeadAlgorithm::XChaCha20Poly1305, keys[0].bytes());
      valid_ = aead_ != nullptr;
    }
    return;
  }
  if (!usesSeparateHeader(method)) {
    return;  // a 2017 method
  }
  const size_t identity_keys = keys.size() - 1;
  for (size_t i = 0; i < std::max<size_t>(identity_keys, 1); ++i) {
    header_ciphers_.push_back(provider.createAes(keys[i].bytes()));
    if (header_ciphers_.back() == nullptr) {
      return;
    }
  }
  for (size_t i = 0; i < identity_keys; ++i) {
    next_hashes_.push_back(userHash(keys[i + 1].bytes()));
  }
  body_key_ = keys.back();
  valid_ = true;
}

void Udp2022Sealer::setNonceForTest(std::span<const uint8_t> nonce) {
  test_nonce_.emplace();
  std::copy_n(nonce.begin(), std::min(nonce.size(), test_nonce_->size()), test_nonce_->begin());
}

size_t Udp2022Sealer::packetSize(const PacketHeader2022& header, size_t payload_size) const {
  const bool xchacha = usesXChaChaPackets(method_);
  const size_t prefix =
      xchacha ? kXChaChaNonceSize : kSeparateHeaderSize + next_hashes_.size() * kIdentityHeaderSize;
  return prefix + fixedBodySize(xchacha, header.type) + header.padding + header.address.size() +
         payload_size + kTagSize;
}

bool Udp2022Sealer::keyBody(const SessionId& session) {
  if (keyed_session_ == session) {
    return true;
  }
  if (!keySession2022(method_, provider_, body_key_.bytes(), session, aead_)) {
    keyed_session_.reset();
    return false;
  }
  keyed_session_ = session;
  return true;
}

size_t Udp2022Sealer::seal(const PacketHeader2022& header, std::span<const uint8_t> payload,
                           std::span<uint8_t> out) {
  const size_t size = packetSize(header, payload.size());
  if (!valid_ || out.size() < size || header.padding > 0xFFFF) {
    return 0;
  }
  const bool xchacha = usesXChaChaPackets(method_);
  if (xchacha) {
    if (test_nonce_) {
      std::copy(test_nonce_->begin(), test_nonce_->end(), out.begin());
      test_nonce_.reset();
    } else {
      saltBytes(out.first(kXChaChaNonceSize));  // public, like a salt
    }
    const size_t body =
        writeBody(header, xchacha, payload, header.address.size(), out.data() + kXChaChaNonceSize);
    const std::span<const uint8_t> nonce = out.first(kXChaChaNonceSize);
    if (body == 0 || !aead_->seal(nonce, {}, {out.data() + kXChaChaNonceSize, body},
                                  out.data() + kXChaChaNonceSize)) {
      return 0;
    }
    return size;
  }
  const std::array<uint8_t, kSeparateHeaderSize> plain_header =
      separateHeader(header.session_id, header.packet_id);
  if (!header_ciphers_[0]->encrypt(plain_header, out.first<kSeparateHeaderSize>())) {
    return 0;
  }
  size_t body_at = kSeparateHeaderSize;
  for (size_t i = 0; i < next_hashes_.size(); ++i, body_at += kIdentityHeaderSize) {
    if (!sealUdpIdentityHeader(*header_ciphers_[i], plain_header, next_hashes_[i],
                               out.subspan(body_at).first<kIdentityHeaderSize>())) {
      return 0;
    }
  }
  const size_t body =
      writeBody(header, xchacha, payload, header.address.size(), out.data() + body_at);
  const std::span<const uint8_t> nonce = std::span(plain_header).subspan(4);
  if (body == 0 || !keyBody(header.session_id) ||
      !aead_->seal(nonce, {}, {out.data() + body_at, body}, out.data() + body_at)) {
    return 0;
  }
  return size;
}

// ---- Udp2022Opener ----

Udp2022Opener::Udp2022Opener(const MethodInfo& method, const AeadProvider& provider,
                             std::span<const uint8_t> psk, uint8_t expected_type,
                             const UserKeyLookup* users)
    : method_(method),
      provider_(provider),
      users_(users),
      expected_type_(expected_type),
      psk_(psk) {
  if (psk.size() != method.key_size) {
    return;
  }
  if (usesXChaChaPackets(method)) {
    if (users == nullptr) {  // no identity headers for ChaCha
      aead_ = provider.create(AeadAlgorithm::XChaCha20Poly1305, psk);
      valid_ = aead_ != nullptr;
    }
  } else if (usesSeparateHeader(method)) {
    header_cipher_ = provider.createAes(psk);
    valid_ = header_cipher_ != nullptr;
  }
}

size_t Udp2022Opener::bodyOffset() const {
  if (usesXChaChaPackets(method_)) {
    return kXChaChaNonceSize;
  }
  return kSeparateHeaderSize + (users_ != nullptr ? kIdentityHeaderSize : 0);
}

OpenedPacket2022 Udp2022Opener::open(std::span<const uint8_t> packet, std::span<uint8_t> out,
                                     uint64_t now) {
  OpenedPacket2022 result;
  const bool xchacha = usesXChaChaPackets(method_);
  const size_t body_at = bodyOffset();
  if (!valid_) {
    result.status = Status2022::CryptoError;
    return result;
  }
  if (packet.size() < body_at + fixedBodySize(xchacha, expected_type_) + kTagSize ||
      out.size() < packet.size() - body_at) {
    result.status = Status2022::BadLength;
    return result;
  }
  const std::span<const uint8_t> sealed = packet.subspan(body_at);
  if (xchacha) {
    result.status = aead_->open(packet.first(kXChaChaNonceSize), {}, sealed, out.data())
                        ? Status2022::Ok
                        : Status2022::AuthFailed;
  } else {
    result.status = openAes(packet, out, &result);
  }
  if (result.status == Status2022::Ok) {
    result.status = parseBody(out.first(sealed.size() - kTagSize), now, &result);
  }
  return result;
}

Status2022 Udp2022Opener::openAes(std::span<const uint8_t> packet, std::span<uint8_t> out,
                                  OpenedPacket2022* result) {
  // Everything before the body is read before the body is opened: `out` may alias it.
  std::array<uint8_t, kSeparateHeaderSize> plain_header;
  if (!header_cipher_->decrypt(packet.first<kSeparateHeaderSize>(), plain_header)) {
    return Status2022::CryptoError;
  }
  SessionId session;
  std::copy_n(plain_header.begin(), session.size(), session.begin());
  std::span<const uint8_t> key = psk_.bytes();
  UserHash user{};
  if (users_ != nullptr) {
    const std::optional<UserHash> hash =
        openUdpIdentityHeader(*header_cipher_, plain_header,
                              packet.subspan(kSeparateHeaderSize).first<kIdentityHeaderSize>());
    if (!hash) {
      return Status2022::CryptoError;
    }
    key = users_->userKey(*hash);
    if (key.size() != method_.key_size) {
      return Status2022::UnknownUser;
    }
    user = *hash;
    result->user = user;
  }
  if (keyed_session_ != session || keyed_user_ != user) {
    if (!keySession2022(method_, provider_, key, session, aead_)) {
      keyed_session_.reset();
      return Status2022::CryptoError;
    }
    keyed_session_ = session;
    keyed_user_ = user;
  }
  const std::span<const uint8_t> nonce = std::span(plain_header).subspan(4);
  if (!aead_->open(nonce, {}, packet.subspan(bodyOffset()), out.data())) {
    return Status2022::AuthFailed;
  }
  result->header.session_id = session;
  result->header.packet_id = loadBe64(plain_header.data() + session.size());
  return Status2022::Ok;
}

Status2022 Udp2022Opener::parseBody(std::span<const uint8_t> body, uint64_t now,
                                    OpenedPacket2022* result) {
  PacketHeader2022& header = result->header;
  size_t pos = 0;
  if (usesXChaChaPackets(method_)) {
    std::copy_n(body.begin(), header.session_id.size(), header.session_id.begin());
    header.packet_id = loadBe64(&body[8]);
    pos = kSessionFieldsSize;
  }
  header.type = body[pos];
  if (header.type != expected_type_) {
    return Status2022::BadType;
  }
  header.timestamp = loadBe64(&body[pos + 1]);
  if (!timestampFresh(header.timestamp, now)) {
    return Status2022::StaleTimestamp;
  }
  pos += 1 + 8;
  if (header.type == kServerHeaderType) {
    std::copy_n(body.begin() + pos, header.client_session_id.size(),
                header.client_session_id.begin());
    pos += header.client_session_id.size();
  }
  header.padding = loadBe16(&body[pos]);
  pos += 2;
  if (header.padding > body.size() - pos) {
    return Status2022::BadHeader;
  }
  pos += header.padding;
  size_t address_size = 0;
  if (parseAddress(body.subspan(pos), &header.address, &address_size) != AddressParse::Ok) {
    return Status2022::BadAddress;
  }
  result->payload = body.subspan(pos + address_size);
  return Status2022::Ok;
}

}  // namespace shadowrelay::crypto
