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

/// One Shadowsocks method (PROTOCOL.md §1.1). Salt size always equals key size.
struct MethodInfo {
  absl::string_view name;
  AeadAlgorithm algorithm;
  size_t key_size;
  size_t salt_size;
  size_t nonce_size;
  size_t tag_size;
  bool recommended;
};

/// All supported SIP004 methods, in a stable order.
std::span<const MethodInfo> allMethods();

/// Looks a method up by name (case-insensitive; IANA names such as AEAD_AES_128_GCM accepted).
/// The error names the supported methods.
absl::StatusOr<const MethodInfo*> findMethod(absl::string_view name);

/// "aes-128-gcm, aes-192-gcm, ..." for messages.
std::string supportedMethodList();

absl::string_view algorithmName(AeadAlgorithm algorithm);

}  // namespace shadowrelay::crypto
