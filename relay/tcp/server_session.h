// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
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
///   Handshake ─ first chunk opens, salt is new, address parses ─▶ Resolving ─▶ Connecting
///       │                                                             └──────────▶ relay
///       │   └─ UDP-over-TCP magic name ─▶ socket pair to a UotServer ─▶ relay
///       └─ wrong key / replayed salt / bad address ─▶ Draining ─ deadline ─▶ FIN
///
/// Nothing is sent to the client before the relay starts, and a rejected client sees the same
/// thing whatever went wrong: its bytes are read and discarded until it closes or until the
/// handshake deadline (counted from accept), and then the connection ends with a FIN.
class ServerSession final : public TcpSession {
 public:
  ServerSession(Worker& worker, Fd client);
  void start() override;

 private:
  enum class State { Handshake, Draining, Closing, Connecting };

  void onHandshakeEvent(Side side, uint32_t events) override;
  void onHandshakeTimer() override;

  void readHandshake();
  void reject(uint64_t* counter, CloseReason reason, const char* why);
  void discardInput();
  void finishDrain();
  void onRemoteConnected() override;
  void onClose() override;
  /// The target asked for UDP over TCP: relay into a socket pair whose other end is a UotServer.
  void startUot(int version);

  State state_ = State::Handshake;
  crypto::AeadStreamDecoder decoder_;
  std::optional<crypto::AeadStreamEncoder> encoder_;
  bool salt_checked_ = false;
  CloseReason drain_reason_ = CloseReason::AuthFailed;
  ByteBuffer plain_;  // opened client bytes: the address header, then early data
  crypto::SocksAddress target_;
  std::unique_ptr<UotServer> uot_;
};

}  // namespace shadowrelay::relay
