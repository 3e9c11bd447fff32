// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
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

/// A 2022 pre-shared key (PROTOCOL.md §2.2): standard base64 (A-Z a-z 0-9 + /, padding optional)
/// of exactly method.key_size bytes. The error names the expected length. No password stretching.
absl::StatusOr<MasterKey> decodePsk(absl::string_view text, const MethodInfo& method);

/// A SIP023 key list "iPSK_1:...:iPSK_k:uPSK" (§2.7), each part as decodePsk; a single PSK is a
/// list of one. The last key is the user's. More than one key only for methods with identity
/// headers (usesSeparateHeader(): the AES methods).
absl::StatusOr<std::vector<MasterKey>> parsePskList(absl::string_view text,
                                                    const MethodInfo& method);

/// The master key from exactly one of `password` or `base64_key`. 2017 methods: the password
/// through EVP_BytesToKey, the key as decodeBase64Key. 2022 methods: either one is the PSK, as
/// decodePsk (the password is the key; nothing is stretched).
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

/// BLAKE3 keyed_hash(key, data), first out.size() bytes: a PRF whose value is the same in every
/// process (unlike absl::Hash, seeded per process), for structures that are saved and loaded.
void blake3KeyedHash(std::span<const uint8_t, 32> key, std::span<const uint8_t> data,
                     std::span<uint8_t> out);

/// The 2022 session subkey (§2.3): BLAKE3 derive_key("shadowsocks 2022 session subkey",
/// psk || salt), out.size() bytes (the key size). `salt` is the TCP salt or the UDP session ID.
void sessionSubkey2022(std::span<const uint8_t> psk, std::span<const uint8_t> salt,
                       std::span<uint8_t> out);

/// The SIP023 identity subkey of a TCP stream (§2.7): BLAKE3 derive_key("shadowsocks 2022
/// identity subkey", ipsk || salt), out.size() bytes (the key size).
void identitySubkey(std::span<const uint8_t> ipsk, std::span<const uint8_t> salt,
                    std::span<uint8_t> out);

/// What a SIP023 identity header carries: BLAKE3(PSK)[0..16].
using UserHash = std::array<uint8_t, 16>;
UserHash userHash(std::span<const uint8_t> psk);

/// A fresh random key of `size` bytes as standard base64 (for generated user keys).
std::string randomBase64Key(size_t size);

/// Cryptographically secure random bytes (OpenSSL's RAND_bytes); aborts if the RNG fails.
void randomBytes(std::span<uint8_t> out);

}  // namespace shadowrelay::crypto
