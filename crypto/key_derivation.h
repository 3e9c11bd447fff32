// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/method.h"

namespace shadowrelay::crypto {

/// A master key (PROTOCOL.md §1.2). Wiped on destruction.
class MasterKey {
 public:
  MasterKey() = default;
  explicit MasterKey(std::span<const uint8_t> bytes) : bytes_(bytes.begin(), bytes.end()) {}
  ~MasterKey();
  MasterKey(const MasterKey&) = default;
  MasterKey& operator=(const MasterKey&) = default;
  MasterKey(MasterKey&&) = default;
  MasterKey& operator=(MasterKey&&) = default;

  std::span<const uint8_t> bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }

 private:
  std::vector<uint8_t> bytes_;
};

/// OpenSSL's EVP_BytesToKey with MD5, no salt, one iteration; the key part only.
MasterKey evpBytesToKey(absl::string_view password, size_t key_len);

/// A raw key given as base64 (standard or URL-safe alphabet, padding optional); its decoded
/// length must equal the method's key size.
absl::StatusOr<MasterKey> decodeBase64Key(absl::string_view text, const MethodInfo& method);

/// The master key from exactly one of `password` (EVP_BytesToKey) or `base64_key`.
absl::StatusOr<MasterKey> masterKeyFor(const MethodInfo& method, absl::string_view password,
                                       absl::string_view base64_key);

/// HKDF (RFC 5869) with SHA-1. Writes out.size() bytes (at most 255 * 20).
bool hkdfSha1(std::span<const uint8_t> ikm, std::span<const uint8_t> salt,
              std::span<const uint8_t> info, std::span<uint8_t> out);

/// The Shadowsocks session subkey: HKDF-SHA1(master, salt, "ss-subkey", key size).
bool sessionSubkey(std::span<const uint8_t> master, std::span<const uint8_t> salt,
                   std::span<uint8_t> out);

/// BLAKE3 derive_key(context, material), first out.size() bytes (SIP022 §2.3).
void blake3DeriveKey(absl::string_view context, std::span<const uint8_t> material,
                     std::span<uint8_t> out);

/// A fresh random key of `size` bytes as standard base64 (for generated user keys).
std::string randomBase64Key(size_t size);

/// Cryptographically secure random bytes (OpenSSL's RAND_bytes); aborts if the RNG fails.
void randomBytes(std::span<uint8_t> out);

}  // namespace shadowrelay::crypto
