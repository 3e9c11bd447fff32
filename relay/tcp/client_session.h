// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <optional>

#include "crypto/address.h"
#include "crypto/aead_stream.h"
#include "relay/tcp/session.h"
#include "relay/udp/socks5_udp.h"

namespace shadowrelay::relay {

/// The client side (`local` and `tunnel`): an application connection relayed to the
/// Shadowsocks server.
///
///   local:  Greeting ─▶ Request ─ CONNECT, reply 0x00 at once ─▶ Connecting ─▶ relay
///                               └─ UDP ASSOCIATE (local -u) ─▶ UdpAssociated until EOF
///   tunnel:                                                      Connecting ─▶ relay
///
/// The server connection is opened while the application sends its first data; the salt, the
/// address header and that data leave in one write (no extra round trip). If the application
/// stays silent for first_data_wait after the server is reached, the address goes alone.
class ClientSession final : public TcpSession {
 public:
  enum class Front { Socks5, Tunnel };

  /// `target`: Tunnel only, instead of -L (UDP over TCP's magic name).
  ClientSession(SessionHost& host, Fd client, Front front,
                std::optional<crypto::SocksAddress> target = std::nullopt);
  void start() override;

 private:
  enum class State { Greeting, Request, Connecting, WaitingData, UdpAssociated };

  void onHandshakeEvent(Side side, uint32_t events) override;
  void onHandshakeTimer() override;
  void onRemoteConnected() override;
  void onClose() override;

  /// Queues a read of the client (SOCKS5 messages, then the first data) up to the limits.
  void readClient();
  void onClientRead(uint8_t* data, size_t have, long result) override;
  /// Parses what early_ holds in the Greeting/Request states. False when the session closed.
  bool advanceSocks();
  void replyAndClose(uint8_t reply_code);
  /// UDP ASSOCIATE: opens the relay socket and replies with its address. False when closed.
  bool associateUdp();
  bool sendToClient(const uint8_t* bytes, size_t n);
  void beginConnect();
  void sendFirst();

  const Front front_;
  State state_;
  ByteBuffer early_;  // client bytes before the relay: SOCKS5 messages, then the first data
  bool client_eof_ = false;
  bool connected_ = false;
  TimePoint first_data_deadline_;
  crypto::SocksAddress target_;
  bool fixed_target_ = false;  // target_ given at construction, not -L
  crypto::SocksAddress server_;
  std::optional<crypto::AeadStreamEncoder> encoder_;
  std::optional<crypto::AeadStreamDecoder> decoder_;
  std::unique_ptr<Socks5UdpRelay> udp_;
};

}  // namespace shadowrelay::relay
