// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "absl/strings/string_view.h"
#include "crypto/method.h"

namespace shadowrelay::crypto {

/// The cipher of one direction of a legacy stream method (PROTOCOL.md §4), keyed with the master
/// key and the IV: one continuous keystream (CTR, ChaCha20, Salsa20, RC4) or CFB chain from the
/// first byte on, so any split of the bytes into apply() calls gives the same output. No
/// integrity at all: it turns any input into output. Not thread-safe. `out` may alias `in`
/// exactly.
class StreamCipher {
 public:
  virtual ~StreamCipher() = default;
  /// Writes in.size() bytes to `out`. @return false only if the library failed.
  virtual bool apply(std::span<const uint8_t> in, uint8_t* out) = 0;
};

using StreamCipherPtr = std::unique_ptr<StreamCipher>;

/// A cipher for `method` (isStream()) keyed with `key` (method.key_size bytes) and `iv`
/// (method.salt_size bytes), encrypting or decrypting (they differ for CFB only).
/// @return nullptr for a wrong size, a non-stream method, or when the library refused (e.g.
/// OpenSSL's legacy provider, which bf-cfb and rc4-md5 need, cannot be loaded).
StreamCipherPtr createStreamCipher(const MethodInfo& method, std::span<const uint8_t> key,
                                   std::span<const uint8_t> iv, bool encrypt);

/// The library behind a stream method: "openssl" (AES, Camellia: OpenSSL's default provider),
/// "openssl-legacy" (Blowfish, RC4: OpenSSL's legacy provider, in a library context of its own)
/// or "libsodium" (ChaCha20, ChaCha20-IETF, Salsa20). "" for an AEAD method.
absl::string_view streamLibrary(const MethodInfo& method);

}  // namespace shadowrelay::crypto
