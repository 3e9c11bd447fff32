// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace shadowrelay::crypto {

/// The AEAD primitive behind a method; providers implement these.
enum class AeadAlgorithm { Aes128Gcm, Aes192Gcm, Aes256Gcm, ChaCha20Poly1305, XChaCha20Poly1305 };

inline constexpr size_t kTagSize = 16;
inline constexpr size_t kMaxKeySize = 32;
inline constexpr size_t kMaxNonceSize = 24;
inline constexpr size_t kMaxSaltSize = 32;

/// The protocol generation a method belongs to: SIP004 "AEAD-2017" (PROTOCOL.md §1) or SIP022
/// "Shadowsocks 2022" (§2). They differ in the key (EVP_BytesToKey or a base64 PSK), the subkey
/// (HKDF-SHA1 or BLAKE3), the TCP headers and the whole UDP format. Stream: the legacy,
/// unauthenticated stream ciphers (§4), served only with --allow-insecure-ciphers.
enum class Edition { Aead2017, Aead2022, Stream };

/// The cipher of a legacy stream method (§4); None for the AEAD methods.
enum class StreamAlgorithm {
  None,
  AesCfb,
  AesCtr,
  CamelliaCfb,
  BfCfb,
  ChaCha20Ietf,
  ChaCha20,
  Salsa20,
  Rc4Md5,
};

/// One Shadowsocks method (PROTOCOL.md §1.1, §2.1). Salt size always equals key size.
/// `algorithm` and `nonce_size` are the TCP AEAD's; a 2022 ChaCha method's UDP packets use
/// XChaCha20-Poly1305 with a 24-byte nonce instead (usesXChaChaPackets()).
/// A Stream method has no AEAD: `algorithm` is unused, salt_size and nonce_size are its IV's
/// size, tag_size is 0, and `stream` names its cipher.
struct MethodInfo {
  absl::string_view name;
  AeadAlgorithm algorithm;
  size_t key_size;
  size_t salt_size;
  size_t nonce_size;
  size_t tag_size;
  bool recommended;
  Edition edition = Edition::Aead2017;
  StreamAlgorithm stream = StreamAlgorithm::None;
};

inline bool isStream(const MethodInfo& m) { return m.edition == Edition::Stream; }

/// The SIP004 (2017) methods, in a stable order: the methods the relay serves until the 2022
/// edition is wired into it (issue 14). Every entry has edition Aead2017.
std::span<const MethodInfo> allMethods();

/// Every method: allMethods() first, then the 2022 methods, then the legacy stream methods.
std::span<const MethodInfo> methodTable();

/// Looks a method of allMethods() up by name (case-insensitive; IANA names such as
/// AEAD_AES_128_GCM accepted): for callers that handle AEAD-2017 methods only (findAnyMethod
/// takes every edition). The error names the supported methods, and the edition of a 2022 or
/// stream method.
absl::StatusOr<const MethodInfo*> findMethod(absl::string_view name);

/// Looks a method of any edition up by name (case-insensitive, IANA names as above). A stream
/// method with the one-time-auth suffix "-auth" (OTA) is refused with a message saying why.
absl::StatusOr<const MethodInfo*> findAnyMethod(absl::string_view name);

/// "aes-128-gcm, aes-192-gcm, ..." (the methods of allMethods()) for messages.
std::string supportedMethodList();

/// 2022 methods whose UDP packets start with an AES-encrypted separate header (the AES-GCM
/// methods, §2.5); only these carry SIP023 identity headers (§2.7). False for 2017 methods.
inline bool usesSeparateHeader(const MethodInfo& m) {
  return m.edition == Edition::Aead2022 && m.algorithm != AeadAlgorithm::ChaCha20Poly1305;
}

/// 2022 methods whose UDP packets are XChaCha20-Poly1305 with the PSK (§2.6).
inline bool usesXChaChaPackets(const MethodInfo& m) {
  return m.edition == Edition::Aead2022 && m.algorithm == AeadAlgorithm::ChaCha20Poly1305;
}

absl::string_view algorithmName(AeadAlgorithm algorithm);

}  // namespace shadowrelay::crypto
