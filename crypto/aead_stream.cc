// SPDX-License-Identifier: Apache-2.0
#include "crypto/aead_stream.h"

#include <algorithm>
#include <cstring>

#include "crypto/key_derivation.h"
#include "crypto/random_pool.h"

namespace shadowrelay::crypto {
namespace {

AeadPtr cipherForSalt(const MethodInfo& method, const AeadProvider& provider,
                      std::span<const uint8_t> master, std::span<const uint8_t> salt) {
  std::array<uint8_t, kMaxKeySize> subkey{};
  std::span<uint8_t> key(subkey.data(), method.key_size);
  AeadPtr aead;
  if (sessionSubkey(master, salt, key)) {
    aead = provider.create(method.algorithm, key);
  }
  std::fill(subkey.begin(), subkey.end(), 0);
  return aead;
}

}  // namespace

bool streamOpensWith(const MethodInfo& method, const AeadProvider& provider,
                     std::span<const uint8_t> master, std::span<const uint8_t> start) {
  if (isStream(method) || start.size() < streamProbeSize(method)) return false;
  const AeadPtr aead = cipherForSalt(method, provider, master, start.first(method.salt_size));
  if (aead == nullptr) return false;
  const std::array<uint8_t, kMaxNonceSize> nonce{};  // the first nonce is zero
  uint8_t length[2];
  return aead->open({nonce.data(), method.nonce_size}, {},
                    start.subspan(method.salt_size, kLengthUnitSize), length);
}

void incrementNonce(std::span<uint8_t> nonce) {
  for (uint8_t& byte : nonce) {
    if (++byte != 0) {
      return;
    }
  }
}

bool sealChunks(Aead& aead, std::span<uint8_t> nonce, size_t max_payload,
                std::span<const uint8_t> in, std::span<uint8_t> out, CodecProgress* progress) {
  *progress = {};
  size_t r = 0;
  size_t w = 0;
  while (r < in.size()) {
    const size_t room = out.size() - w;
    if (room < kLengthUnitSize + 1 + kTagSize) {
      break;
    }
    const size_t len =
        std::min({in.size() - r, max_payload, room - kLengthUnitSize - kTagSize});
    const uint8_t length[2] = {static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
    if (!aead.seal(nonce, {}, length, out.data() + w)) {
      return false;
    }
    incrementNonce(nonce);
    w += kLengthUnitSize;
    if (!aead.seal(nonce, {}, in.subspan(r, len), out.data() + w)) {
      return false;
    }
    incrementNonce(nonce);
    w += len + kTagSize;
    r += len;
  }
  progress->consumed = r;
  progress->produced = w;
  return true;
}

AeadStreamDecoder::AeadStreamDecoder(const MethodInfo& method, const AeadProvider& provider,
                                     std::span<const uint8_t> master)
    : method_(method), provider_(provider) {
  std::copy_n(master.begin(), std::min(master.size(), master_.size()), master_.begin());
}

size_t AeadStreamDecoder::nextUnitSize() const {
  if (isStream(method_)) return stream_ == nullptr ? method_.salt_size : 1;
  if (aead_ == nullptr) {
    return method_.salt_size;
  }
  return pending_payload_ == 0 ? kLengthUnitSize : pending_payload_ + kTagSize;
}

DecodeStatus AeadStreamDecoder::decode(std::span<const uint8_t> in, std::span<uint8_t> out,
                                       CodecProgress* progress) {
  *progress = {};
  if (error_ != DecodeStatus::Ok) {
    return error_;
  }
  if (isStream(method_)) return decodeStream(in, out, progress);
  const std::span<const uint8_t> nonce(nonce_.data(), method_.nonce_size);
  size_t pos = 0;
  size_t written = 0;
  while (true) {
    const size_t unit = nextUnitSize();
    if (in.size() - pos < unit) {
      break;
    }
    if (aead_ == nullptr) {
      std::memcpy(salt_.data(), in.data() + pos, unit);
      aead_ = cipherForSalt(method_, provider_, {master_.data(), method_.key_size}, salt());
      std::fill(master_.begin(), master_.end(), 0);
      if (aead_ == nullptr) {
        return error_ = DecodeStatus::CryptoError;
      }
      pos += unit;
      continue;
    }
    if (pending_payload_ == 0) {
      uint8_t length[2];
      if (!aead_->open(nonce, {}, in.subspan(pos, unit), length)) {
        return error_ = DecodeStatus::AuthFailed;
      }
      incrementNonce(nonce_);
      authenticated_ = true;
      const size_t len = static_cast<size_t>(length[0]) << 8 | length[1];
      if (len == 0 || len > kMaxChunkPayload) {
        return error_ = DecodeStatus::BadLength;
      }
      pending_payload_ = len;
      pos += unit;
      continue;
    }
    if (out.size() - written < pending_payload_) {
      break;
    }
    if (!aead_->open(nonce, {}, in.subspan(pos, unit), out.data() + written)) {
      return error_ = DecodeStatus::AuthFailed;
    }
    incrementNonce(nonce_);
    written += pending_payload_;
    pending_payload_ = 0;
    pos += unit;
  }
  progress->consumed = pos;
  progress->produced = written;
  return DecodeStatus::Ok;
}

DecodeStatus AeadStreamDecoder::decodeStream(std::span<const uint8_t> in,
                                             std::span<uint8_t> out, CodecProgress* progress) {
  size_t pos = 0;
  if (stream_ == nullptr) {
    if (in.size() < method_.salt_size) return DecodeStatus::Ok;  // the IV is not complete yet
    std::memcpy(salt_.data(), in.data(), method_.salt_size);
    stream_ = createStreamCipher(method_, {master_.data(), method_.key_size}, salt(),
                                 /*encrypt=*/false);
    std::fill(master_.begin(), master_.end(), 0);
    if (stream_ == nullptr) return error_ = DecodeStatus::CryptoError;
    authenticated_ = true;
    pos = method_.salt_size;
  }
  const size_t n = std::min(in.size() - pos, out.size());
  if (!stream_->apply(in.subspan(pos, n), out.data())) return error_ = DecodeStatus::CryptoError;
  progress->consumed = pos + n;
  progress->produced = n;
  return DecodeStatus::Ok;
}

AeadStreamEncoder::AeadStreamEncoder(const MethodInfo& method, const AeadProvider& provider,
                                     std::span<const uint8_t> master,
                                     std::span<const uint8_t> salt)
    : method_(method) {
  if (salt.size() == method.salt_size) {
    std::copy(salt.begin(), salt.end(), salt_.begin());
  } else {
    saltBytes({salt_.data(), method.salt_size});
  }
  if (isStream(method)) {
    stream_ = createStreamCipher(method, master.first(std::min(master.size(), method.key_size)),
                                 this->salt(), /*encrypt=*/true);
    return;
  }
  aead_ = cipherForSalt(method, provider, master, this->salt());
}

size_t AeadStreamEncoder::maxEncodedSize(size_t plain_len) const {
  if (stream_ != nullptr) return (salt_sent_ ? 0 : method_.salt_size) + plain_len;
  const size_t chunks = (plain_len + max_payload_ - 1) / max_payload_;
  return (salt_sent_ ? 0 : method_.salt_size) + plain_len + chunks * (kLengthUnitSize + kTagSize);
}

bool AeadStreamEncoder::encode(std::span<const uint8_t> in, std::span<uint8_t> out,
                               CodecProgress* progress) {
  *progress = {};
  if (aead_ == nullptr && stream_ == nullptr) {
    return false;
  }
  size_t w = 0;
  if (!salt_sent_) {
    if (out.size() < method_.salt_size) {
      return true;
    }
    std::memcpy(out.data(), salt_.data(), method_.salt_size);
    w = method_.salt_size;
    salt_sent_ = true;
  }
  if (stream_ != nullptr) {
    const size_t n = std::min(in.size(), out.size() - w);
    if (!stream_->apply(in.first(n), out.data() + w)) return false;
    progress->consumed = n;
    progress->produced = w + n;
    return true;
  }
  CodecProgress chunks;
  if (!sealChunks(*aead_, {nonce_.data(), method_.nonce_size}, max_payload_, in,
                  out.subspan(w), &chunks)) {
    return false;
  }
  progress->consumed = chunks.consumed;
  progress->produced = w + chunks.produced;
  return true;
}

}  // namespace shadowrelay::crypto
