// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/aead.h"
#include "crypto/legacy_stream.h"
#include "crypto/method.h"

namespace shadowrelay::crypto {

/// SIP004 TCP framing (PROTOCOL.md §1.5):
///
///   stream = salt | chunk | chunk | ...
///   chunk  = Seal(be16 L) [2+16] | Seal(payload) [L+16]      1 <= L <= 0x3FFF
///
/// Nonces are little-endian counters incremented after every seal/open (§1.4).
///
/// The decoder and encoder below also carry the legacy stream methods (isStream(), §4):
///
///   stream = IV | StreamEncrypt(master key, IV, bytes ...)
///
/// with the same calls, so that every role serves them where it serves SIP004: the IV is the
/// "salt" (the replay filter's key), and any byte is a whole unit. Nothing is authenticated.
inline constexpr size_t kMaxChunkPayload = 0x3FFF;
inline constexpr size_t kLengthUnitSize = 2 + kTagSize;
inline constexpr size_t kMaxChunkSize = kLengthUnitSize + kMaxChunkPayload + kTagSize;

struct CodecProgress {
  size_t consumed = 0;  // input bytes used
  size_t produced = 0;  // output bytes written
};

enum class DecodeStatus { Ok, AuthFailed, BadLength, CryptoError };

/// Increments a little-endian counter of any length (libsodium sodium_increment).
void incrementNonce(std::span<uint8_t> nonce);

/// Seals `in` as chunks of at most `max_payload` bytes, each Seal(be16 L) | Seal(payload), into
/// `out`, advancing `nonce` after every seal; stops when a chunk of one byte no longer fits.
/// Shared by the SIP004 and 2022 encoders. @return false on a crypto library failure.
bool sealChunks(Aead& aead, std::span<uint8_t> nonce, size_t max_payload,
                std::span<const uint8_t> in, std::span<uint8_t> out, CodecProgress* progress);

/// Bytes a stream must have before streamOpensWith() can answer: salt and first length header.
inline size_t streamProbeSize(const MethodInfo& method) { return method.salt_size + kLengthUnitSize; }

/// Whether the stream that begins with `start` (at least streamProbeSize() bytes) was sealed
/// with `master`: derives the session key from the salt and opens the first length header.
/// This is how a port shared by several users tells them apart (trial decryption). Always false
/// for a stream method: without authentication nothing tells keys apart (one user per port).
bool streamOpensWith(const MethodInfo& method, const AeadProvider& provider,
                     std::span<const uint8_t> master, std::span<const uint8_t> start);

/// Incremental decoder for one direction. It only consumes whole units (salt, length header,
/// payload): the caller keeps unconsumed bytes and offers them again with more appended, so
/// any split of the input decodes identically and no partial unit is copied here.
/// Not thread-safe; owned by one session.
class AeadStreamDecoder {
 public:
  /// `master` is copied; `provider` must outlive the decoder.
  AeadStreamDecoder(const MethodInfo& method, const AeadProvider& provider,
                    std::span<const uint8_t> master);

  /// Decodes whole units of `in` into `out`. Stops at a partial unit or when `out` cannot hold
  /// the next payload. Errors are sticky.
  DecodeStatus decode(std::span<const uint8_t> in, std::span<uint8_t> out, CodecProgress* progress);

  /// Size of the next unit: the salt, the length header, or payload + tag (a stream method: the
  /// IV, then 1).
  size_t nextUnitSize() const;
  /// True once the first length header authenticated (the key is right). A stream method: once
  /// the IV was read (nothing can be authenticated; any key "opens" any stream).
  bool authenticated() const { return authenticated_; }
  std::span<const uint8_t> salt() const { return {salt_.data(), method_.salt_size}; }
  const MethodInfo& method() const { return method_; }

 private:
  DecodeStatus decodeStream(std::span<const uint8_t> in, std::span<uint8_t> out,
                            CodecProgress* progress);

  const MethodInfo& method_;
  const AeadProvider& provider_;
  std::array<uint8_t, kMaxKeySize> master_{};
  std::array<uint8_t, kMaxSaltSize> salt_{};
  std::array<uint8_t, kMaxNonceSize> nonce_{};
  AeadPtr aead_;
  StreamCipherPtr stream_;  // a stream method's cipher, once the IV was read
  size_t pending_payload_ = 0;  // L of the next payload, 0 when a length header is next
  bool authenticated_ = false;
  DecodeStatus error_ = DecodeStatus::Ok;
};

/// Encoder for one direction: the salt first, then chunks of at most max_payload bytes.
class AeadStreamEncoder {
 public:
  /// `salt` empty: a random salt is drawn. `provider` must outlive the encoder.
  AeadStreamEncoder(const MethodInfo& method, const AeadProvider& provider,
                    std::span<const uint8_t> master, std::span<const uint8_t> salt = {});

  /// Encodes as much of `in` as fits in `out` (whole chunks; the last may be short).
  /// @return false on a crypto library failure (never on lack of space).
  bool encode(std::span<const uint8_t> in, std::span<uint8_t> out, CodecProgress* progress);

  std::span<const uint8_t> salt() const { return {salt_.data(), method_.salt_size}; }
  bool valid() const { return aead_ != nullptr || stream_ != nullptr; }
  void setMaxPayloadForTest(size_t n) { max_payload_ = n; }

  /// Upper bound of the encoded size of `plain_len` bytes, including the salt if not yet sent.
  size_t maxEncodedSize(size_t plain_len) const;

 private:
  const MethodInfo& method_;
  std::array<uint8_t, kMaxSaltSize> salt_{};
  std::array<uint8_t, kMaxNonceSize> nonce_{};
  AeadPtr aead_;
  StreamCipherPtr stream_;  // a stream method's cipher (keyed with the IV, salt_)
  size_t max_payload_ = kMaxChunkPayload;
  bool salt_sent_ = false;
};

}  // namespace shadowrelay::crypto
