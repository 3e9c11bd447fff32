// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "crypto/aead.h"

namespace shadowrelay::crypto {

/// OpenSSL 3 (linked normally). XChaCha20-Poly1305 is built from OpenSSL's ChaCha20-Poly1305
/// and a small HChaCha20 written here, because OpenSSL has no HChaCha20 or XChaCha API.
///
/// Aead instances call the cipher's provider functions directly (provider-cipher(7)), which
/// skips EVP's per-message parameter lookups. They fall back to EVP_CIPHER_CTX when the
/// implementation lacks one of those functions or, checked once per algorithm, does not give
/// EVP's ciphertext and tag for a test message.
class OpensslProvider final : public AeadProvider {
 public:
  enum class Path { Direct, Evp };

  /// Path::Evp always uses EVP_CIPHER_CTX (tests compare the two paths).
  explicit OpensslProvider(Path path = Path::Direct) : path_(path) {}

  absl::string_view name() const override { return "openssl"; }
  bool supports(AeadAlgorithm algorithm) const override;
  AeadPtr create(AeadAlgorithm algorithm, std::span<const uint8_t> key) const override;
  /// AES-ECB through EVP_CIPHER_CTX (one context per direction, padding off).
  BlockCipherPtr createAes(std::span<const uint8_t> key) const override;
  /// True when create() returns an Aead that calls the provider functions directly.
  bool direct(AeadAlgorithm algorithm) const;

 private:
  Path path_;
};

/// HChaCha20 (draft-irtf-cfrg-xchacha §2.2): 32-byte key, 16-byte input -> 32-byte subkey.
void hchacha20(const uint8_t key[32], const uint8_t input[16], uint8_t out[32]);

/// The process-wide OpenSSL provider.
const AeadProvider& opensslProvider();

}  // namespace shadowrelay::crypto
