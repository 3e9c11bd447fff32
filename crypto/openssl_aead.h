// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "crypto/aead.h"

namespace shadowrelay::crypto {

/// OpenSSL 3 (linked normally). XChaCha20-Poly1305 is built from OpenSSL's ChaCha20-Poly1305
/// and a small HChaCha20 written here, because OpenSSL has no HChaCha20 or XChaCha API.
class OpensslProvider final : public AeadProvider {
 public:
  absl::string_view name() const override { return "openssl"; }
  bool supports(AeadAlgorithm algorithm) const override;
  AeadPtr create(AeadAlgorithm algorithm, std::span<const uint8_t> key) const override;
};

/// HChaCha20 (draft-irtf-cfrg-xchacha §2.2): 32-byte key, 16-byte input -> 32-byte subkey.
void hchacha20(const uint8_t key[32], const uint8_t input[16], uint8_t out[32]);

/// The process-wide OpenSSL provider.
const AeadProvider& opensslProvider();

}  // namespace shadowrelay::crypto
