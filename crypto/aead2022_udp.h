// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead.h"
#include "crypto/aead2022.h"
#include "crypto/identity_header.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"

namespace shadowrelay::crypto {

/// Shadowsocks 2022 UDP packets (PROTOCOL.md §2.5, §2.6; identity headers §2.7).
///
/// AES methods:
///   packet = AES(PSK, separate header) [16] | EIH [16 each] | Seal(subkey, nonce, body) | tag
///     separate header = session ID [8] | packet ID u64 [8]
///     subkey = sessionSubkey2022(PSK, session ID), nonce = separate header[4..16]
///     body   = type [1] | timestamp u64 [8] | (server: client session ID [8]) | P u16 [2]
///              | padding [P] | address | payload
/// ChaCha methods (no identity headers):
///   packet = nonce [24] | XChaCha20-Poly1305-Seal(PSK, nonce, session ID | packet ID | body) | tag
///
/// With identity headers the separate header is keyed with iPSK_1 and the body with the user's
/// PSK; replies from the server carry none and use the user's PSK throughout.

using SessionId = std::array<uint8_t, 8>;

/// The fields of a 2022 UDP packet besides its payload.
struct PacketHeader2022 {
  uint8_t type = kClientHeaderType;  // kClientHeaderType or kServerHeaderType
  SessionId session_id{};            // the sender's session
  uint64_t packet_id = 0;
  uint64_t timestamp = 0;         // Unix seconds
  SessionId client_session_id{};  // server packets: the client session answered
  size_t padding = 0;             // bytes of zero padding (sealing), or found (opening)
  SocksAddress address;           // client: the destination; server: the reply's source
};

/// Seals 2022 UDP packets with one key list. Reuses its ciphers across packets (the AES body
/// cipher is rekeyed when the session changes). Not thread-safe; one per session or loop.
class Udp2022Sealer {
 public:
  /// `keys`: a parsePskList() result, iPSK_1..iPSK_k then the PSK that keys the body; one key
  /// for no identity headers (always so for ChaCha, and for a server's replies: the user's
  /// PSK). `provider` must outlive the sealer.
  Udp2022Sealer(const MethodInfo& method, const AeadProvider& provider,
                std::span<const MasterKey> keys);

  bool valid() const { return valid_; }

  /// Exact size of the packet seal() makes.
  size_t packetSize(const PacketHeader2022& header, size_t payload_size) const;

  /// Seals one packet into `out` (timestamp and all as in `header`). `out` must not overlap
  /// `payload`. @return the packet size, or 0 if `out` is too small, the address does not
  /// encode, or the library failed.
  size_t seal(const PacketHeader2022& header, std::span<const uint8_t> payload,
              std::span<uint8_t> out);

  /// ChaCha methods: the next seal() uses this nonce instead of a random one.
  void setNonceForTest(std::span<const uint8_t> nonce);

 private:
  bool keyBody(const SessionId& session);

  const MethodInfo& method_;
  const AeadProvider& provider_;
  std::vector<BlockCipherPtr> header_ciphers_;  // AES: iPSK_1..iPSK_k, or the PSK when k = 0
  std::vector<UserHash> next_hashes_;           // AES: BLAKE3 of iPSK_2..iPSK_k, PSK
  MasterKey body_key_;
  AeadPtr aead_;
  std::optional<SessionId> keyed_session_;  // AES: the session aead_ is keyed for
  std::optional<std::array<uint8_t, 24>> test_nonce_;
  bool valid_ = false;
};

/// What Udp2022Opener::open found.
struct OpenedPacket2022 {
  Status2022 status = Status2022::Ok;
  PacketHeader2022 header;           // valid when status is Ok
  std::span<const uint8_t> payload;  // inside `out`
  std::optional<UserHash> user;      // the user an identity header named
};

/// Opens 2022 UDP packets for one receiver key. Not thread-safe; one per loop (or session).
/// Updating a session's sliding window (replay filter) and last-seen address is the caller's,
/// after an Ok (§2.5); so is comparing a server packet's client_session_id with its own.
class Udp2022Opener {
 public:
  /// `psk`: a server's own PSK (with `users`, its identity key: each packet must carry one
  /// identity header naming a user, whose PSK keys the body), or a client's user PSK.
  /// `expected_type`: kClientHeaderType on a server, kServerHeaderType on a client. `users`
  /// may be null, else it must outlive the opener; `provider` too.
  Udp2022Opener(const MethodInfo& method, const AeadProvider& provider,
                std::span<const uint8_t> psk, uint8_t expected_type,
                const UserKeyLookup* users = nullptr);

  bool valid() const { return valid_; }

  /// Where the sealed body starts in a packet; `out` may be the packet from there exactly
  /// (opening in place).
  size_t bodyOffset() const;

  /// Opens `packet` into `out` (which must hold packet.size() - bodyOffset() bytes, else
  /// BadLength) and checks type, timestamp against `now` (Unix seconds), padding and address.
  OpenedPacket2022 open(std::span<const uint8_t> packet, std::span<uint8_t> out, uint64_t now);

 private:
  Status2022 parseBody(std::span<const uint8_t> body, uint64_t now, OpenedPacket2022* result);
  Status2022 openAes(std::span<const uint8_t> packet, std::span<uint8_t> out,
                     OpenedPacket2022* result);

  const MethodInfo& method_;
  const AeadProvider& provider_;
  const UserKeyLookup* users_;
  uint8_t expected_type_;
  MasterKey psk_;
  BlockCipherPtr header_cipher_;  // AES: keyed with psk_
  AeadPtr aead_;
  // AES: what aead_ is keyed for; `keyed_user_` only matters with users.
  std::optional<SessionId> keyed_session_;
  UserHash keyed_user_{};
  bool valid_ = false;
};

}  // namespace shadowrelay::crypto
