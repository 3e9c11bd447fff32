// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include "absl/strings/string_view.h"

#include "crypto/method.h"

namespace shadowrelay::crypto {

/// A keyed AEAD cipher (tag 16 bytes). Not thread-safe: one instance per stream direction
/// or per loop. `out` may alias `in` exactly (in-place), for every provider.
class Aead {
 public:
  virtual ~Aead() = default;

  /// Replaces the key (same algorithm, same key size). Cheaper than creating a new cipher.
  /// @return false only if the library refused the key.
  virtual bool rekey(std::span<const uint8_t> key) = 0;

  /// Writes in.size() + 16 bytes (ciphertext || tag) to `out`.
  virtual bool seal(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                    std::span<const uint8_t> in, uint8_t* out) = 0;

  /// `in` is ciphertext || tag; writes in.size() - 16 bytes to `out`. false on a tag mismatch
  /// (then `out` holds garbage) or when `in` is shorter than the tag.
  virtual bool open(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
                    std::span<const uint8_t> in, uint8_t* out) = 0;
};

using AeadPtr = std::unique_ptr<Aead>;

/// A keyed AES block cipher for single 16-byte blocks: no mode, no padding, no IV (what
/// PROTOCOL.md calls AES-ECB). Shadowsocks 2022 uses it for the UDP separate header and the
/// SIP023 identity headers (§2.5, §2.7). Not thread-safe. `out` may alias `in` exactly.
class BlockCipher {
 public:
  static constexpr size_t kBlockSize = 16;
  using InBlock = std::span<const uint8_t, kBlockSize>;
  using OutBlock = std::span<uint8_t, kBlockSize>;

  virtual ~BlockCipher() = default;
  /// @return false only if the library failed.
  virtual bool encrypt(InBlock in, OutBlock out) = 0;
  virtual bool decrypt(InBlock in, OutBlock out) = 0;
};

using BlockCipherPtr = std::unique_ptr<BlockCipher>;

/// A crypto library that can create Aead and AES block instances. Thread-safe (const after
/// construction).
class AeadProvider {
 public:
  virtual ~AeadProvider() = default;
  virtual absl::string_view name() const = 0;
  virtual bool supports(AeadAlgorithm algorithm) const = 0;
  /// @return nullptr if the algorithm is unsupported or the key size is wrong.
  virtual AeadPtr create(AeadAlgorithm algorithm, std::span<const uint8_t> key) const = 0;
  /// AES-128, -192 or -256 by the key's size (16, 24 or 32 bytes), for single blocks.
  /// @return nullptr for another key size or if the library failed.
  virtual BlockCipherPtr createAes(std::span<const uint8_t> key) const = 0;
};

}  // namespace shadowrelay::crypto
