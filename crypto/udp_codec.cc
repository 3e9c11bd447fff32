// SPDX-License-Identifier: Apache-2.0
#include "crypto/udp_codec.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "crypto/key_derivation.h"
#include "crypto/legacy_stream.h"
#include "crypto/random_pool.h"

namespace shadowrelay::crypto {
namespace {
constexpr std::array<uint8_t, kMaxNonceSize> kZeroNonce{};
}

UdpCodec::UdpCodec(const MethodInfo& method, const AeadProvider& provider)
    : method_(method), provider_(provider) {}

bool UdpCodec::rekey(std::span<const uint8_t> master, std::span<const uint8_t> salt) {
  std::array<uint8_t, kMaxKeySize> subkey{};
  std::span<uint8_t> key(subkey.data(), method_.key_size);
  bool ok = sessionSubkey(master, salt, key);
  if (ok) {
    if (aead_ == nullptr) {
      aead_ = provider_.create(method_.algorithm, key);
      ok = aead_ != nullptr;
    } else {
      ok = aead_->rekey(key);
    }
  }
  std::fill(subkey.begin(), subkey.end(), 0);
  return ok;
}

size_t UdpCodec::seal(std::span<const uint8_t> master, std::span<const uint8_t> plain,
                      std::span<uint8_t> out) {
  const size_t total = plain.size() + overhead();
  if (out.size() < total) {
    return 0;
  }
  std::span<uint8_t> salt = out.first(method_.salt_size);
  saltBytes(salt);
  if (isStream(method_)) {
    StreamCipherPtr cipher = createStreamCipher(method_, master, salt, /*encrypt=*/true);
    return cipher != nullptr && cipher->apply(plain, out.data() + method_.salt_size) ? total : 0;
  }
  if (!rekey(master, salt)) {
    return 0;
  }
  if (!aead_->seal({kZeroNonce.data(), method_.nonce_size}, {}, plain,
                   out.data() + method_.salt_size)) {
    return 0;
  }
  return total;
}

std::optional<size_t> UdpCodec::open(std::span<const uint8_t> master,
                                     std::span<const uint8_t> packet, std::span<uint8_t> out) {
  if (packet.size() < overhead()) {
    return std::nullopt;
  }
  const size_t plain_len = packet.size() - overhead();
  if (isStream(method_)) {
    if (out.size() < plain_len) return std::nullopt;
    StreamCipherPtr cipher =
        createStreamCipher(method_, master, packet.first(method_.salt_size), /*encrypt=*/false);
    if (cipher == nullptr || !cipher->apply(packet.subspan(method_.salt_size), out.data())) {
      return std::nullopt;
    }
    return plain_len;
  }
  if (out.size() < plain_len || !rekey(master, packet.first(method_.salt_size))) {
    return std::nullopt;
  }
  if (!aead_->open({kZeroNonce.data(), method_.nonce_size}, {}, packet.subspan(method_.salt_size),
                   out.data())) {
    return std::nullopt;
  }
  return plain_len;
}

}  // namespace shadowrelay::crypto
