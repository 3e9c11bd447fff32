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
#include "crypto/aead_stream.h"
#include "crypto/identity_header.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"

namespace shadowrelay::crypto {

/// Shadowsocks 2022 TCP streams (PROTOCOL.md §2.4; identity headers §2.7):
///
///   request  = salt | EIH [16 each] | Seal(fixed) [11+16] | Seal(variable) [H+16] | chunk ...
///     fixed    = type 0 [1] | timestamp u64 [8] | H u16 [2]
///     variable = address | P u16 [2] | padding [P] | initial payload
///   response = salt | Seal(fixed) [1+8+S+2 + 16] | Seal(payload) [L+16] | chunk ...
///     fixed    = type 1 [1] | timestamp u64 [8] | request salt [S] | L u16 [2]
///   chunk    = Seal(be16 L) [2+16] | Seal(payload) [L+16]           0 <= L <= 0xFFFF
///
/// Each direction has its own salt and session subkey sessionSubkey2022(PSK, salt) (with
/// identity headers: the user's PSK) and a 12-byte little-endian nonce counter from zero,
/// advanced after every seal and open.

/// What a request's headers say besides the initial payload.
struct RequestHeader2022 {
  uint64_t timestamp = 0;  // Unix seconds
  SocksAddress target;
  size_t padding = 0;
};

/// Incremental decoder for one direction of a 2022 stream. Like AeadStreamDecoder it consumes
/// only whole units (salt with identity header and fixed header, variable header, length,
/// payload): the caller keeps unconsumed bytes and offers them again with more appended, so any
/// split of the input decodes identically. Errors are sticky. Not thread-safe.
///
/// The first unit is exactly what a server should read in one go (§2.4 detection prevention):
/// nextUnitSize() before anything was consumed.
class Aead2022StreamDecoder {
 public:
  /// Server side: a client's request. `psk` is the server's key; it is the session key, or with
  /// `users` the identity key: one identity header is read and the user it names keys the
  /// session. `users` may be null, else it must outlive the decoder; `provider` too.
  static Aead2022StreamDecoder request(const MethodInfo& method, const AeadProvider& provider,
                                       std::span<const uint8_t> psk,
                                       const UserKeyLookup* users = nullptr);
  /// Client side: the server's response to our request that was sent with `request_salt`,
  /// keyed with the user's PSK.
  static Aead2022StreamDecoder response(const MethodInfo& method, const AeadProvider& provider,
                                        std::span<const uint8_t> psk,
                                        std::span<const uint8_t> request_salt);

  /// Decodes whole units of `in` into `out` (payload bytes only; a request's initial payload
  /// first). `now` is the receiver's clock in Unix seconds, used for the header's timestamp.
  /// Stops at a partial unit or when `out` has less room than nextOutputSize(). On an error,
  /// `progress` still counts the units decoded before it; later calls return the same error
  /// and consume nothing. `out` must not overlap `in`.
  Status2022 decode(std::span<const uint8_t> in, std::span<uint8_t> out, uint64_t now,
                    CodecProgress* progress);

  /// Size of the next unit in `in`.
  size_t nextUnitSize() const;
  /// Room the next unit needs in `out`: the variable header (H, of which the initial payload is
  /// returned) or the next payload (L); 0 for the other units.
  size_t nextOutputSize() const;

  /// True once the fixed header opened and its type, timestamp (and a response's request salt)
  /// were right: the key is right. A server checks salt() against its replay store now (§2.4).
  bool authenticated() const { return stage_ != Stage::Header; }
  /// True once a request's variable header was read (requestHeader() is set); for a response,
  /// the same as authenticated().
  bool headerComplete() const { return authenticated() && stage_ != Stage::VariableHeader; }
  const RequestHeader2022& requestHeader() const { return header_; }
  /// The header's timestamp (valid once authenticated).
  uint64_t timestamp() const { return header_.timestamp; }
  /// The peer's salt (valid once the first unit was consumed).
  std::span<const uint8_t> salt() const { return {salt_.data(), method_.salt_size}; }
  /// The user the identity header named (a request decoder with users, once authenticated).
  const std::optional<UserHash>& user() const { return user_; }
  const MethodInfo& method() const { return method_; }

 private:
  enum class Stage { Header, VariableHeader, Length, Payload };

  Aead2022StreamDecoder(const MethodInfo& method, const AeadProvider& provider,
                        std::span<const uint8_t> psk, bool request, const UserKeyLookup* users,
                        std::span<const uint8_t> request_salt);

  /// Keys aead_ from the salt (and, with users, the identity header at the start of
  /// `identity_header`); wipes psk_ whatever the outcome.
  Status2022 keySession(std::span<const uint8_t> identity_header);
  Status2022 openHeader(std::span<const uint8_t> unit, uint64_t now);
  Status2022 openVariableHeader(std::span<const uint8_t> unit, uint8_t* out, size_t* produced);
  size_t fixedHeaderSize() const;

  const MethodInfo& method_;
  const AeadProvider& provider_;
  const UserKeyLookup* users_;
  bool request_;
  std::array<uint8_t, kMaxKeySize> psk_{};            // zeroed once the session key exists
  std::array<uint8_t, kMaxSaltSize> request_salt_{};  // response: the salt our request used
  std::array<uint8_t, kMaxSaltSize> salt_{};
  std::array<uint8_t, 12> nonce_{};
  AeadPtr aead_;
  Stage stage_ = Stage::Header;
  size_t pending_ = 0;  // H in VariableHeader, L in Payload
  RequestHeader2022 header_;
  std::optional<UserHash> user_;
  Status2022 error_ = Status2022::Ok;
};

/// Encoder for one direction of a 2022 stream: the salt and headers with the first data, then
/// chunks of at most 0xFFFF bytes. Not thread-safe.
class Aead2022StreamEncoder {
 public:
  /// Client side: the request to `target`. `keys` is a parsePskList() result: iPSK_1..iPSK_k
  /// (one identity header each) then the user's PSK, which keys the session; one key for no
  /// identity headers. `padding` (at most kMaxPaddingLength): nullopt pads with 1..900 random
  /// bytes when the header goes out without payload and not at all otherwise (§2.4); 0 never
  /// pads, so the header then waits for the first payload byte. `salt` empty: a random salt.
  static Aead2022StreamEncoder request(const MethodInfo& method, const AeadProvider& provider,
                                       std::span<const MasterKey> keys, const SocksAddress& target,
                                       std::optional<size_t> padding = std::nullopt,
                                       std::span<const uint8_t> salt = {});
  /// Server side: the response to the request with `request_salt`, keyed with the user's PSK.
  /// Its header goes out with the first payload byte.
  static Aead2022StreamEncoder response(const MethodInfo& method, const AeadProvider& provider,
                                        std::span<const uint8_t> psk,
                                        std::span<const uint8_t> request_salt,
                                        std::span<const uint8_t> salt = {});

  /// Encodes as much of `in` as fits in `out`. The first call that writes anything writes the
  /// salt and the headers, stamped `now` (Unix seconds), with as much payload as fits; headers
  /// are all or nothing. A request writes them even for an empty `in` (padded), a response
  /// only with data. `out` must not overlap `in`.
  /// @return false on a crypto library failure or an unencodable target (never on lack of
  /// space).
  bool encode(std::span<const uint8_t> in, std::span<uint8_t> out, uint64_t now,
              CodecProgress* progress);

  /// Upper bound of the encoded size of `plain_len` bytes, with the headers if not yet sent.
  size_t maxEncodedSize(size_t plain_len) const;
  bool headerSent() const { return header_sent_; }
  std::span<const uint8_t> salt() const { return {salt_.data(), method_.salt_size}; }
  bool valid() const { return aead_ != nullptr; }
  void setMaxPayloadForTest(size_t n) { max_payload_ = n; }

 private:
  Aead2022StreamEncoder(const MethodInfo& method, bool request, std::span<const uint8_t> salt);

  bool encodeRequestHeader(std::span<const uint8_t> in, std::span<uint8_t> out, uint64_t now,
                           CodecProgress* progress);
  bool encodeResponseHeader(std::span<const uint8_t> in, std::span<uint8_t> out, uint64_t now,
                            CodecProgress* progress);
  bool sealUnit(std::span<const uint8_t> plain, uint8_t* out);

  const MethodInfo& method_;
  bool request_;
  std::array<uint8_t, kMaxSaltSize> salt_{};
  std::array<uint8_t, kMaxSaltSize> request_salt_{};  // response only
  std::vector<uint8_t> identity_headers_;             // request only, 16 bytes each
  SocksAddress target_;                               // request only
  std::optional<size_t> padding_;                     // request only
  std::array<uint8_t, 12> nonce_{};
  AeadPtr aead_;
  size_t max_payload_ = kMaxChunkPayload2022;
  bool header_sent_ = false;
};

}  // namespace shadowrelay::crypto
