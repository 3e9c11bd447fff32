// SPDX-License-Identifier: Apache-2.0
#include "crypto/identity_header.h"

#include <array>

namespace shadowrelay::crypto {
namespace {

BlockCipherPtr identityCipher(const AeadProvider& provider, std::span<const uint8_t> ipsk,
                              std::span<const uint8_t> salt) {
  if (ipsk.size() > kMaxKeySize) {
    return nullptr;
  }
  std::array<uint8_t, kMaxKeySize> subkey{};
  const std::span<uint8_t> key(subkey.data(), ipsk.size());
  identitySubkey(ipsk, salt, key);
  BlockCipherPtr aes = provider.createAes(key);
  subkey.fill(0);
  return aes;
}

void xorInto(const UserHash& hash, IdentityBlock block, IdentityBlockOut out) {
  for (size_t i = 0; i < kIdentityHeaderSize; ++i) {
    out[i] = static_cast<uint8_t>(hash[i] ^ block[i]);
  }
}

}  // namespace

bool sealTcpIdentityHeader(const AeadProvider& provider, std::span<const uint8_t> ipsk,
                           std::span<const uint8_t> salt, const UserHash& next,
                           IdentityBlockOut out) {
  const BlockCipherPtr aes = identityCipher(provider, ipsk, salt);
  return aes != nullptr && aes->encrypt(next, out);
}

std::optional<UserHash> openTcpIdentityHeader(const AeadProvider& provider,
                                              std::span<const uint8_t> ipsk,
                                              std::span<const uint8_t> salt, IdentityBlock eih) {
  const BlockCipherPtr aes = identityCipher(provider, ipsk, salt);
  UserHash hash;
  if (aes == nullptr || !aes->decrypt(eih, hash)) {
    return std::nullopt;
  }
  return hash;
}

bool sealUdpIdentityHeader(BlockCipher& ipsk, IdentityBlock separate_header, const UserHash& next,
                           IdentityBlockOut out) {
  std::array<uint8_t, kIdentityHeaderSize> mixed;
  xorInto(next, separate_header, mixed);
  return ipsk.encrypt(mixed, out);
}

std::optional<UserHash> openUdpIdentityHeader(BlockCipher& ipsk, IdentityBlock separate_header,
                                              IdentityBlock eih) {
  std::array<uint8_t, kIdentityHeaderSize> mixed;
  if (!ipsk.decrypt(eih, mixed)) {
    return std::nullopt;
  }
  UserHash hash;
  xorInto(mixed, separate_header, hash);
  return hash;
}

UserHash UserKeyTable::add(std::span<const uint8_t> psk) {
  const UserHash hash = userHash(psk);
  keys_.try_emplace(hash, psk);
  return hash;
}

std::span<const uint8_t> UserKeyTable::userKey(const UserHash& hash) const {
  const auto it = keys_.find(hash);
  return it == keys_.end() ? std::span<const uint8_t>() : it->second.bytes();
}

}  // namespace shadowrelay::crypto
