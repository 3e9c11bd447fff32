// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <optional>

#include "crypto/address.h"
#include "crypto/aead2022_stream.h"
#include "crypto/aead_stream.h"
#include "relay/tcp/gost_udp_framing.h"
#include "relay/tcp/session.h"
#include "relay/udp/socks5_udp.h"
#include "relay/upstream/upstream_balancer.h"

namespace shadowrelay::relay {

/// The client side (`local` and `tunnel`): an application connection relayed to the
/// Shadowsocks server.
///
///   local:  Greeting ─▶ Request ─ CONNECT, reply 0x00 at once ─▶ Connecting ─▶ relay
///                               └─ UDP ASSOCIATE (local -u) ─▶ UdpAssociated until EOF
///                                  (or gost's 0xF3)
///   tunnel:                                                      Connecting ─▶ relay
///
/// The server connection is opened while the application sends its first data; the salt, the
/// address header and that data leave in one write (no extra round trip). If the application
/// stays silent for first_data_wait after the server is reached, the address goes alone.
///
/// 2022 methods (PROTOCOL.md §2.4): the salt, the fixed and variable headers (address, and
/// 1..900 random bytes of padding when no data came within first_data_wait) and the first data
/// leave in that one write; the response's type, timestamp (±30 s) and echoed request salt are
/// checked, and a mismatch ends the session (BadStream).
///
/// Several servers (relay/upstream): the balancer gives the order to try them in; a connect
/// that fails (refused, unreachable, timed out, name not resolved) moves on to the next server
/// before anything reached the application, which sees one successful connection. The
/// session speaks with the credentials (method, key) of the server it reached.
///
/// UdpAssociated: whatever the client sends on the control connection must be gost-style
/// framed datagrams (docs/UDP_OVER_TCP.md); they go to the association, whose replies come back
/// framed (onFramedReply). A malformed frame closes the connection (counted).
class ClientSession final : public TcpSession, private Socks5UdpRelay::FramedReplies {
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
  bool onConnectFailed(CloseReason reason) override;
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
  // The control connection of a UDP association (gost-style framing).
  void onControlEvent(uint32_t events);
  void onControlRead(const uint8_t* data, long result);
  /// Writes the parked framed replies. False when the session closed.
  bool flushFramedReplies();
  // Socks5UdpRelay::FramedReplies
  bool onFramedReply(std::span<const uint8_t> frame) override;
  void beginConnect();
  /// Connects to plan_[attempt_].
  void connectServer();
  /// --acl bypass: the relay starts with the client's first bytes, unencrypted both ways.
  void relayDirect();
  const Upstream& upstream() const;
  void sendFirst();
  void sendFirst2022();
  /// The first `sealed` bytes (in scratchOut()) are ready, the transforms set: relay.
  void relayFirst(size_t sealed);

  const Front front_;
  State state_;
  ByteBuffer early_;  // client bytes before the relay: SOCKS5 messages, then the first data
  bool client_eof_ = false;
  bool connected_ = false;
  TimePoint first_data_deadline_;
  crypto::SocksAddress target_;
  bool fixed_target_ = false;  // target_ given at construction, not -L
  bool bypass_ = false;          // --acl sent the target around the server: plain, direct
  UpstreamBalancer::Plan plan_;  // the servers to try, in order
  size_t attempt_ = 0;           // index into plan_
  TimePoint connect_started_;
  std::optional<crypto::AeadStreamEncoder> encoder_;
  std::optional<crypto::AeadStreamDecoder> decoder_;
  std::optional<crypto::Aead2022StreamEncoder> encoder2022_;
  std::optional<crypto::Aead2022StreamDecoder> decoder2022_;
  std::unique_ptr<Socks5UdpRelay> udp_;
  GostUdpFraming gost_;  // UdpAssociated: framed datagrams in, framed replies parked out
};

}  // namespace shadowrelay::relay
