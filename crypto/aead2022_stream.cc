// SPDX-License-Identifier: Apache-2.0
#include "crypto/aead2022_stream.h"

#include <algorithm>
#include <cstring>

#include "crypto/random_pool.h"

namespace shadowrelay::crypto {
namespace {

constexpr size_t kRequestFixedSize = 1 + 8 + 2;
// The shortest variable header: a one-letter host name (1 + 1 + 1 + 2) and the padding length.
constexpr size_t kMinVariableHeader = 5 + 2;

size_t responseFixedSize(const MethodInfo& method) { return 1 + 8 + method.salt_size + 2; }

// 1..kMaxPaddingLength, uniform enough for padding.
size_t randomPaddingLength() {
  uint8_t r[2];
  saltBytes(r);
  return (static_cast<size_t>(r[0]) << 8 | r[1]) % kMaxPaddingLength + 1;
}

}  // namespace

// ---- Aead2022StreamDecoder ----

Aead2022StreamDecoder::Aead2022StreamDecoder(const MethodInfo& method, const AeadProvider& provider,
                                             std::span<const uint8_t> psk, bool request,
                                             const UserKeyLookup* users,
                                             std::span<const uint8_t> request_salt)
    : method_(method), provider_(provider), users_(users), request_(request) {
  if (psk.size() == method.key_size) {
    std::copy(psk.begin(), psk.end(), psk_.begin());
  } else {
    error_ = Status2022::CryptoError;  // a caller's mistake; nothing will open
  }
  if (!request && request_salt.size() == method.salt_size) {
    std::copy(request_salt.begin(), request_salt.end(), request_salt_.begin());
  } else if (!request) {
    error_ = Status2022::CryptoError;
  }
}

Aead2022StreamDecoder Aead2022StreamDecoder::request(const MethodInfo& method,
                                                     const AeadProvider& provider,
                                                     std::span<const uint8_t> psk,
                                                     const UserKeyLookup* users) {
  return Aead2022StreamDecoder(method, provider, psk, /*request=*/true, users, {});
}

Aead2022StreamDecoder Aead2022StreamDecoder::response(const MethodInfo& method,
                                                      const AeadProvider& provider,
                                                      std::span<const uint8_t> psk,
                                                      std::span<const uint8_t> request_salt) {
  return Aead2022StreamDecoder(method, provider, psk, /*request=*/false, nullptr, request_salt);
}

size_t Aead2022StreamDecoder::fixedHeaderSize() const {
  return request_ ? kRequestFixedSize : responseFixedSize(method_);
}

size_t Aead2022StreamDecoder::nextUnitSize() const {
  switch (stage_) {
    case Stage::Header:
      return method_.salt_size + (users_ != nullptr ? kIdentityHeaderSize : 0) + fixedHeaderSize() +
             kTagSize;
    case Stage::Length:
      return kLengthUnitSize;
    case Stage::VariableHeader:
    case Stage::Payload:
      return pending_ + kTagSize;
  }
  return 0;
}

size_t Aead2022StreamDecoder::nextOutputSize() const {
  return stage_ == Stage::VariableHeader || stage_ == Stage::Payload ? pending_ : 0;
}

Status2022 Aead2022StreamDecoder::decode(std::span<const uint8_t> in, std::span<uint8_t> out,
                                         uint64_t now, CodecProgress* progress) {
  *progress = {};
  if (error_ != Status2022::Ok) {
    return error_;
  }
  const std::span<uint8_t> nonce(nonce_);
  Status2022 status = Status2022::Ok;
  size_t pos = 0;
  size_t written = 0;
  while (status == Status2022::Ok) {
    const size_t unit_size = nextUnitSize();
    if (in.size() - pos < unit_size || out.size() - written < nextOutputSize()) {
      break;
    }
    const std::span<const uint8_t> unit = in.subspan(pos, unit_size);
    switch (stage_) {
      case Stage::Header:
        status = openHeader(unit, now);
        break;
      case Stage::VariableHeader:
        status = openVariableHeader(unit, out.data() + written, &written);
        break;
      case Stage::Length: {
        uint8_t length[2];
        if (!aead_->open(nonce, {}, unit, length)) {
          status = Status2022::AuthFailed;
          break;
        }
        incrementNonce(nonce);
        pending_ = loadBe16(length);  // 0 is allowed: an empty chunk carries only its tag
        stage_ = Stage::Payload;
        break;
      }
      case Stage::Payload:
        if (!aead_->open(nonce, {}, unit, out.data() + written)) {
          status = Status2022::AuthFailed;
          break;
        }
        incrementNonce(nonce);
        written += pending_;
        stage_ = Stage::Length;
        break;
    }
    if (status == Status2022::Ok) {
      pos += unit_size;
    }
  }
  progress->consumed = pos;
  progress->produced = written;
  error_ = status;
  return status;
}

Status2022 Aead2022StreamDecoder::keySession(std::span<const uint8_t> identity_header) {
  const std::span<const uint8_t> psk(psk_.data(), method_.key_size);
  std::span<const uint8_t> session_psk = psk;
  Status2022 status = Status2022::Ok;
  if (users_ != nullptr) {
    const std::optional<UserHash> hash = openTcpIdentityHeader(
        provider_, psk, salt(), identity_header.first<kIdentityHeaderSize>());
    session_psk = hash ? users_->userKey(*hash) : std::span<const uint8_t>();
    if (!hash) {
      status = Status2022::CryptoError;
    } else if (session_psk.size() != method_.key_size) {
      status = Status2022::UnknownUser;
    } else {
      user_ = *hash;
    }
  }
  if (status == Status2022::Ok &&
      !keySession2022(method_, provider_, session_psk, salt(), aead_)) {
    status = Status2022::CryptoError;
  }
  psk_.fill(0);  // whatever happened: the stream is keyed now, or dead
  return status;
}

Status2022 Aead2022StreamDecoder::openHeader(std::span<const uint8_t> unit, uint64_t now) {
  const size_t salt_size = method_.salt_size;
  std::memcpy(salt_.data(), unit.data(), salt_size);
  size_t pos = salt_size;
  if (const Status2022 keyed = keySession(unit.subspan(pos)); keyed != Status2022::Ok) {
    return keyed;
  }
  if (users_ != nullptr) {
    pos += kIdentityHeaderSize;
  }
  std::array<uint8_t, 1 + 8 + kMaxSaltSize + 2> fixed;
  if (!aead_->open(nonce_, {}, unit.subspan(pos), fixed.data())) {
    return Status2022::AuthFailed;
  }
  incrementNonce(nonce_);
  if (fixed[0] != (request_ ? kClientHeaderType : kServerHeaderType)) {
    return Status2022::BadType;
  }
  header_.timestamp = loadBe64(&fixed[1]);
  if (!timestampFresh(header_.timestamp, now)) {
    return Status2022::StaleTimestamp;
  }
  if (request_) {
    pending_ = loadBe16(&fixed[9]);
    if (pending_ < kMinVariableHeader) {
      return Status2022::BadLength;
    }
    stage_ = Stage::VariableHeader;
    return Status2022::Ok;
  }
  if (std::memcmp(&fixed[9], request_salt_.data(), salt_size) != 0) {
    return Status2022::SaltMismatch;
  }
  pending_ = loadBe16(&fixed[9 + salt_size]);
  stage_ = Stage::Payload;
  return Status2022::Ok;
}

Status2022 Aead2022StreamDecoder::openVariableHeader(std::span<const uint8_t> unit, uint8_t* out,
                                                     size_t* produced) {
  if (!aead_->open(nonce_, {}, unit, out)) {
    return Status2022::AuthFailed;
  }
  incrementNonce(nonce_);
  const size_t size = pending_;
  size_t address_size = 0;
  if (parseAddress({out, size}, &header_.target, &address_size) != AddressParse::Ok) {
    return Status2022::BadAddress;  // also one that runs past the header
  }
  if (address_size + 2 > size) {
    return Status2022::BadHeader;
  }
  header_.padding = loadBe16(out + address_size);
  const size_t payload_at = address_size + 2 + header_.padding;
  if (payload_at > size || (payload_at == size && header_.padding == 0)) {
    return Status2022::BadHeader;
  }
  std::memmove(out, out + payload_at, size - payload_at);
  *produced += size - payload_at;
  stage_ = Stage::Length;
  return Status2022::Ok;
}

// ---- Aead2022StreamEncoder ----

Aead2022StreamEncoder::Aead2022StreamEncoder(const MethodInfo& method, bool request,
                                             std::span<const uint8_t> salt)
    : method_(method), request_(request) {
  if (salt.size() == method.salt_size) {
    std::copy(salt.begin(), salt.end(), salt_.begin());
  } else {
    saltBytes({salt_.data(), method.salt_size});
  }
}

Aead2022StreamEncoder Aead2022StreamEncoder::request(
    const MethodInfo& method, const AeadProvider& provider, std::span<const MasterKey> keys,
    const SocksAddress& target, std::optional<size_t> padding, std::span<const uint8_t> salt) {
  Aead2022StreamEncoder enc(method, /*request=*/true, salt);
  enc.target_ = target;
  if (padding) {
    enc.padding_ = std::min(*padding, kMaxPaddingLength);
  }
  if (keys.empty() || (keys.size() > 1 && !usesSeparateHeader(method))) {
    return enc;  // invalid: no key, or identity headers for a method without them
  }
  enc.identity_headers_.resize((keys.size() - 1) * kIdentityHeaderSize);
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    const IdentityBlockOut eih(enc.identity_headers_.data() + i * kIdentityHeaderSize,
                               kIdentityHeaderSize);
    if (keys[i].size() != method.key_size ||
        !sealTcpIdentityHeader(provider, keys[i].bytes(), enc.salt(), userHash(keys[i + 1].bytes()),
                               eih)) {
      return enc;
    }
  }
  if (!keySession2022(method, provider, keys.back().bytes(), enc.salt(), enc.aead_)) {
    enc.aead_ = nullptr;
  }
  return enc;
}

Aead2022StreamEncoder Aead2022StreamEncoder::response(const MethodInfo& method,
                                                      const AeadProvider& provider,
                                                      std::span<const uint8_t> psk,
                                                      std::span<const uint8_t> request_salt,
                                                      std::span<const uint8_t> salt) {
  Aead2022StreamEncoder enc(method, /*request=*/false, salt);
  if (request_salt.size() != method.salt_size) {
    return enc;
  }
  std::copy(request_salt.begin(), request_salt.end(), enc.request_salt_.begin());
  if (!keySession2022(method, provider, psk, enc.salt(), enc.aead_)) {
    enc.aead_ = nullptr;
  }
  return enc;
}

bool Aead2022StreamEncoder::sealUnit(std::span<const uint8_t> plain, uint8_t* out) {
  if (!aead_->seal(nonce_, {}, plain, out)) {
    return false;
  }
  incrementNonce(nonce_);
  return true;
}

size_t Aead2022StreamEncoder::maxEncodedSize(size_t plain_len) const {
  size_t header = 0;
  if (!header_sent_) {
    header = method_.salt_size + kTagSize +
             (request_ ? identity_headers_.size() + kRequestFixedSize + target_.size() + 2 +
                             padding_.value_or(kMaxPaddingLength) + kTagSize
                       : responseFixedSize(method_));
  }
  const size_t chunks = (plain_len + max_payload_ - 1) / max_payload_;
  return header + plain_len + chunks * (kLengthUnitSize + kTagSize);
}

bool Aead2022StreamEncoder::encode(std::span<const uint8_t> in, std::span<uint8_t> out,
                                   uint64_t now, CodecProgress* progress) {
  *progress = {};
  if (aead_ == nullptr) {
    return false;
  }
  CodecProgress header;
  if (!header_sent_) {
    const bool ok = request_ ? encodeRequestHeader(in, out, now, &header)
                             : encodeResponseHeader(in, out, now, &header);
    if (!ok || !header_sent_) {
      return ok;
    }
  }
  CodecProgress chunks;
  if (!sealChunks(*aead_, nonce_, max_payload_, in.subspan(header.consumed),
                  out.subspan(header.produced), &chunks)) {
    return false;
  }
  progress->consumed = header.consumed + chunks.consumed;
  progress->produced = header.produced + chunks.produced;
  return true;
}

bool Aead2022StreamEncoder::encodeRequestHeader(std::span<const uint8_t> in, std::span<uint8_t> out,
                                                uint64_t now, CodecProgress* progress) {
  const size_t padding = padding_ ? *padding_ : (in.empty() ? randomPaddingLength() : 0);
  if (padding == 0 && in.empty()) {
    return true;  // a header needs padding or payload (§2.4): wait for data
  }
  const size_t address_size = target_.size();
  const size_t fixed_at = method_.salt_size + identity_headers_.size();
  const size_t variable_at = fixed_at + kRequestFixedSize + kTagSize;
  const size_t variable_min = address_size + 2 + padding;
  const size_t least = variable_at + variable_min + kTagSize + (padding == 0 ? 1 : 0);
  if (out.size() < least) {
    return true;
  }
  const size_t payload = std::min({in.size(), kMaxChunkPayload2022 - variable_min,
                                   out.size() - (variable_at + variable_min + kTagSize)});
  const size_t variable_size = variable_min + payload;
  // The variable header's plaintext is laid out in `out` and sealed in place.
  uint8_t* variable = out.data() + variable_at;
  if (writeAddress(target_, {variable, address_size}) != address_size) {
    return false;
  }
  storeBe16(variable + address_size, static_cast<uint16_t>(padding));
  std::memset(variable + address_size + 2, 0, padding);
  if (payload > 0) {
    std::memcpy(variable + variable_min, in.data(), payload);
  }
  std::memcpy(out.data(), salt_.data(), method_.salt_size);
  if (!identity_headers_.empty()) {
    std::memcpy(out.data() + method_.salt_size, identity_headers_.data(), identity_headers_.size());
  }
  uint8_t fixed[kRequestFixedSize];
  fixed[0] = kClientHeaderType;
  storeBe64(fixed + 1, now);
  storeBe16(fixed + 9, static_cast<uint16_t>(variable_size));
  if (!sealUnit(fixed, out.data() + fixed_at) || !sealUnit({variable, variable_size}, variable)) {
    return false;
  }
  header_sent_ = true;
  progress->consumed = payload;
  progress->produced = variable_at + variable_size + kTagSize;
  return true;
}

bool Aead2022StreamEncoder::encodeResponseHeader(std::span<const uint8_t> in,
                                                 std::span<uint8_t> out, uint64_t now,
                                                 CodecProgress* progress) {
  const size_t salt_size = method_.salt_size;
  const size_t payload_at = salt_size + responseFixedSize(method_) + kTagSize;
  if (in.empty() || out.size() < payload_at + 1 + kTagSize) {
    return true;
  }
  const size_t payload = std::min({in.size(), max_payload_, out.size() - payload_at - kTagSize});
  std::memcpy(out.data(), salt_.data(), salt_size);
  std::array<uint8_t, 1 + 8 + kMaxSaltSize + 2> fixed;
  fixed[0] = kServerHeaderType;
  storeBe64(&fixed[1], now);
  std::memcpy(&fixed[9], request_salt_.data(), salt_size);
  storeBe16(&fixed[9 + salt_size], static_cast<uint16_t>(payload));
  if (!sealUnit({fixed.data(), responseFixedSize(method_)}, out.data() + salt_size) ||
      !sealUnit(in.first(payload), out.data() + payload_at)) {
    return false;
  }
  header_sent_ = true;
  progress->consumed = payload;
  progress->produced = payload_at + payload + kTagSize;
  return true;
}

}  // namespace shadowrelay::crypto
