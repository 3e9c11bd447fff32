// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/strings/string_view.h"
#include "crypto/aead.h"
#include "crypto/method.h"

namespace shadowrelay::crypto {

/// Shared by the Shadowsocks 2022 codecs (PROTOCOL.md §2): header types, limits, and the typed
/// errors a decoder reports so that the server can count each kind.

/// The type byte of a header: client→server streams and packets carry 0, server→client 1.
/// A decoder that sees the other one rejects the message (it is reflected).
inline constexpr uint8_t kClientHeaderType = 0;
inline constexpr uint8_t kServerHeaderType = 1;

/// A header's timestamp must be within this many seconds of the receiver's clock (§2.4).
inline constexpr uint64_t kMaxTimestampSkew = 30;

/// Senders pad with at most this many bytes (MaxPaddingLength); receivers accept any padding
/// that fits its header.
inline constexpr size_t kMaxPaddingLength = 900;

/// A 2022 TCP chunk carries up to 0xFFFF bytes (the SIP004 cap of 0x3FFF does not apply).
inline constexpr size_t kMaxChunkPayload2022 = 0xFFFF;

/// What a 2022 decoder found. Every value but Ok is final for a stream (errors are sticky) and
/// drops a packet.
enum class Status2022 {
  Ok,
  AuthFailed,      // a tag did not verify: wrong key, tampering, or a probe
  UnknownUser,     // SIP023: the identity header names no configured user
  BadType,         // the header's type byte is the other direction's (reflected)
  StaleTimestamp,  // the header's timestamp is more than kMaxTimestampSkew from now
  BadLength,       // too short for its header, or a length field its header cannot hold
  BadAddress,      // the address in the header does not parse (ATYP, host length, truncated)
  BadHeader,       // padding runs past the header, or a request has neither padding nor payload
  SaltMismatch,    // a response that answers another request salt than ours
  CryptoError,     // the crypto library failed (not the peer's doing)
};

/// "auth_failed", "stale_timestamp", ... (snake case, for logs and metric labels).
absl::string_view statusName(Status2022 status);

/// Keys `aead` (or, if null, creates it) with the session subkey sessionSubkey2022(psk, salt)
/// for the method's TCP AEAD. @return false if the library failed or `psk` has the wrong size.
bool keySession2022(const MethodInfo& method, const AeadProvider& provider,
                    std::span<const uint8_t> psk, std::span<const uint8_t> salt, AeadPtr& aead);

/// |now - timestamp| <= kMaxTimestampSkew, both in Unix seconds.
inline bool timestampFresh(uint64_t timestamp, uint64_t now) {
  return timestamp <= now ? now - timestamp <= kMaxTimestampSkew
                          : timestamp - now <= kMaxTimestampSkew;
}

inline void storeBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

inline uint16_t loadBe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

inline void storeBe64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

inline uint64_t loadBe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}

}  // namespace shadowrelay::crypto
