// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead2022_stream.h"
#include "crypto/aead_stream.h"
#include "dns/ip_address.h"
#include "dns/resolver.h"
#include "relay/net/preauth_limits.h"
#include "relay/tcp/session.h"
#include "relay/udp/uot_server.h"
#include "relay/users/user_matcher.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay {

/// The server side of a Shadowsocks TCP connection (PROTOCOL.md §1.5, §5):
///
///   Handshake ─ a user's key opens the first chunk, salt is new, address parses ─▶ Connecting
///       │                                                             └──────────▶ relay
///       │   └─ UDP-over-TCP magic name ─▶ socket pair to a UotServer ─▶ relay
///       └─ wrong key / replayed salt / bad address ─▶ Draining ─ deadline ─▶ FIN
///
/// Nothing is sent to the client before the relay starts, and a rejected client sees the same
/// thing whatever went wrong: its bytes are read and discarded until it closes or until the
/// handshake deadline (counted from accept), and then the connection ends with a FIN.
///
/// With one user on the port its key decodes the stream from the first byte. With several, the
/// salt and the first length header are buffered and tried with each user's key (UserMatcher)
/// before decoding starts. An identified user over a limit is refused (counted) and closed.
///
/// Shadowsocks 2022 (PROTOCOL.md §2.4; one user on the port, the -k default): the first read is
/// exactly the decoder's first unit (salt + fixed header; queueClientRead() with what is
/// missing of it); its type and timestamp (±30 s of the loop's wall clock) are checked, then
/// the salt against the exact 60 s store shared by the workers (RelayEnv::salt_store_2022,
/// never the Bloom filter); the variable header carries the address, padding and initial
/// payload (neither padding nor payload: rejected). Every rejection is the probe handling above
/// (nothing sent, drain, FIN at the deadline), counted (a stale timestamp: stale_timestamps,
/// close reason stale_timestamp). The response is the server salt, the fixed header (type 1,
/// timestamp, request salt, length) and the first data, then chunks of up to 0xFFFF bytes.
///
/// A 2022 AES port with users (SIP023, §2.7; UserTable::identityPort): the first unit also holds
/// one identity header, opened with the port's iPSK; the user hash in it finds the user in one
/// lookup (PortIdentity), and that user's key (uPSK) keys both directions. An unknown identity
/// is a wrong key: the probe handling above, counted as auth_failed.
class ServerSession final : public TcpSession {
 public:
  /// `peer`: the client's address; `user_port`: the dedicated port accepted on (0: shared);
  /// `preauth`: its place among the unauthenticated connections, given back once the first
  /// chunk authenticated with a fresh salt, or at the close.
  ServerSession(SessionHost& host, Fd client, const SocketAddress& peer, uint16_t user_port,
                PreauthSlot preauth = {});
  void start() override;

 private:
  enum class State { Handshake, Draining, Closing, Connecting };

  void onHandshakeEvent(Side side, uint32_t events) override;
  void onHandshakeTimer() override;

  void onClientRead(uint8_t* data, size_t have, long result) override;
  /// The first chunk(s): identify the user, open the address header, keep early data.
  void onHandshakeBytes(uint8_t* data, size_t have, long result);
  /// How much the next handshake-phase read of the client may take: kReadSize, or for a 2022
  /// stream before authentication exactly what is missing of the first unit.
  size_t handshakeReadLimit() const;
  /// 2022: decodes the `total` bytes at `in` (the kept partial unit, then what was read).
  void decodeHandshake2022(const uint8_t* in, size_t total);
  /// After a decode of `in`: keeps the partial unit and the opened bytes. False while
  /// connecting (the early data waits in plain_), true when the handshake goes on.
  bool keepDecoded(const uint8_t* in, size_t total, const crypto::CodecProgress& progress);
  /// A 2022 decoder's error before the relay: which probe it counts as.
  void reject2022(crypto::Status2022 status);
  /// The address is known (2017: parsed from plain_; 2022: the variable header): connect.
  void startTarget();
  /// Several users on the port: tries their keys on the buffered start of the stream. False
  /// when the session must wait for more bytes or was rejected.
  bool identify(std::span<const uint8_t> start);
  /// SIP023: the user the opened identity header named becomes the candidate. False if closed.
  bool identifyByHeader();
  /// The first chunk authenticated for user_: limits and replay checks. False if closed.
  bool admit();
  void reject(uint64_t* counter, CloseReason reason, const char* why);
  /// Draining a rejected client: bytes counted and dropped; EOF or an error closes.
  void onDiscarded(long result);
  void finishDrain();
  void onRemoteConnected() override;
  void onClose() override;
  /// The target asked for UDP over TCP: relay into a socket pair whose other end is a UotServer.
  void startUot(int version);

  State state_ = State::Handshake;
  const std::string client_ip_;  // raw address bytes, for the matcher's per-IP hint
  const std::string device_key_;  // the client's network (sourceKey()), one of the user's devices
  DeviceLease device_;  // once admitted: counts the device as active until the close
  const uint16_t user_port_;
  PreauthSlot preauth_;
  RelayUserPtr candidate_;  // whose key decodes the stream; becomes user() once admitted
  UserMatcher::StreamTrials tried_;  // several users on the port: the keys that failed so far
  // SIP023 port: its lookup (owned by identity_table_, held until the user is known).
  UserTablePtr identity_table_;
  const PortIdentity* identity_ = nullptr;
  std::optional<crypto::AeadStreamDecoder> decoder_;
  std::optional<crypto::AeadStreamEncoder> encoder_;
  std::optional<crypto::Aead2022StreamDecoder> decoder2022_;  // 2022 method: instead of decoder_
  std::optional<crypto::Aead2022StreamEncoder> encoder2022_;
  bool admitted_ = false;
  CloseReason drain_reason_ = CloseReason::AuthFailed;
  ByteBuffer plain_;  // opened client bytes: the address header, then early data
  crypto::SocksAddress target_;
  std::unique_ptr<UotServer> uot_;
};

}  // namespace shadowrelay::relay
