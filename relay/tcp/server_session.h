// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <span>
#include <string>
#include <optional>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead_stream.h"
#include "dns/ip_address.h"
#include "dns/resolver.h"
#include "relay/tcp/session.h"
#include "relay/udp/uot_server.h"

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
class ServerSession final : public TcpSession {
 public:
  /// `peer`: the client's address; `user_port`: the dedicated port accepted on (0: shared).
  ServerSession(SessionHost& host, Fd client, const SocketAddress& peer, uint16_t user_port);
  void start() override;

 private:
  enum class State { Handshake, Draining, Closing, Connecting };

  void onHandshakeEvent(Side side, uint32_t events) override;
  void onHandshakeTimer() override;

  void onClientRead(uint8_t* data, size_t have, long result) override;
  /// The first chunk(s): identify the user, open the address header, keep early data.
  void onHandshakeBytes(uint8_t* data, size_t have, long result);
  /// Several users on the port: tries their keys on the buffered start of the stream. False
  /// when the session must wait for more bytes or was rejected.
  bool identify(std::span<const uint8_t> start);
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
  const uint16_t user_port_;
  RelayUserPtr candidate_;  // whose key decodes the stream; becomes user() once admitted
  std::optional<crypto::AeadStreamDecoder> decoder_;
  std::optional<crypto::AeadStreamEncoder> encoder_;
  bool admitted_ = false;
  CloseReason drain_reason_ = CloseReason::AuthFailed;
  ByteBuffer plain_;  // opened client bytes: the address header, then early data
  crypto::SocksAddress target_;
  std::unique_ptr<UotServer> uot_;
};

}  // namespace shadowrelay::relay
