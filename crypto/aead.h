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

/// A crypto library that can create Aead instances. Thread-safe (const after construction).
class AeadProvider {
 public:
  virtual ~AeadProvider() = default;
  virtual absl::string_view name() const = 0;
  virtual bool supports(AeadAlgorithm algorithm) const = 0;
  /// @return nullptr if the algorithm is unsupported or the key size is wrong.
  virtual AeadPtr create(AeadAlgorithm algorithm, std::span<const uint8_t> key) const = 0;
};

}  // namespace shadowrelay::crypto
