// SPDX-License-Identifier: Apache-2.0
#pragma once
// The UDP half of a SOCKS5 UDP ASSOCIATE (RFC 1928 §7) on `local -u`.
//
//   client ──[RSV RSV FRAG ATYP addr port data]──▶ relay socket ──[SIP004 packet]──▶ server
//   client ◀─[00 00 00 ATYP src port data]──────── relay socket ◀─[SIP004 packet]─── server
//
// Each association has a UDP socket of its own, bound on the address the client reached us at
// (the reply to UDP ASSOCIATE names it), and one socket connected to the Shadowsocks server.
// Only datagrams from the associating client's IP are taken; replies go to the client's last
// source address. The owning ClientSession keeps it as long as the control connection lives:
// closing the connection closes both sockets (RFC 1928: the association ends with it).
// With --udp-over-tcp the server side is a UDP-over-TCP stream instead of the socket. With a 2022
// method the association is one client session (relay/udp/udp2022_session.h).
//
// gost-style UDP over TCP (docs/UDP_OVER_TCP.md): the owning session may feed it datagrams the
// client framed on the control connection (relayFramed); from the first one on, the relay socket
// is closed and every reply goes back framed through FramedReplies, whichever way the datagram
// it answers came. Both ways reach the server alike (UDP, or UoT with --udp-over-tcp).
//
// Several servers (relay/upstream): the association takes the balancer's best server when it
// is made and keeps it for its life (the client's next UDP ASSOCIATE picks again); ICMP port
// unreachable from it counts as a failed connect. Its UDP over TCP streams pick their server
// as every TCP session does.

#include <memory>
#include <optional>
#include <span>

#include "absl/status/statusor.h"
#include "crypto/udp_codec.h"
#include "relay/event/event_types.h"
#include "relay/event/io_watcher.h"
#include "relay/net/socket.h"
#include "relay/socks5.h"
#include "relay/udp/udp2022_session.h"
#include "relay/udp/udp_association.h"
#include "relay/udp/uot.h"

namespace shadowrelay::relay {

struct Credentials;
class WorkerContext;

class Socks5UdpRelay {
 public:
  /// Takes the replies of an association in framed mode (the owning session).
  class FramedReplies {
   public:
    virtual ~FramedReplies() = default;
    /// One whole frame, valid during the call. False: dropped (and counted by the taker).
    /// Runs inside the relay's event handlers: it must not destroy the relay (no close of the
    /// owning session from here).
    virtual bool onFramedReply(std::span<const uint8_t> frame) = 0;
  };

  /// Binds the relay socket on `local` (the control connection's local address; its port is
  /// ignored) for datagrams from `client`'s IP. Error: the socket could not be made or bound.
  static absl::StatusOr<std::unique_ptr<Socks5UdpRelay>> open(WorkerContext& worker,
                                                              const SocketAddress& local,
                                                              const SocketAddress& client);
  ~Socks5UdpRelay();
  Socks5UdpRelay(const Socks5UdpRelay&) = delete;
  Socks5UdpRelay& operator=(const Socks5UdpRelay&) = delete;

  /// Where the client sends its datagrams (BND.ADDR and BND.PORT of the reply).
  const SocketAddress& bound() const { return bound_; }
  /// The last datagram relayed in either direction (the association's idle clock).
  TimePoint lastActive() const { return last_active_; }

  /// Relays a datagram the client framed on the control connection (`frame`: the whole frame,
  /// `parsed` its parse). The first one closes the relay socket; replies go to `replies` from
  /// then on, which must outlive the relay.
  void relayFramed(const socks5::UdpFrame& parsed, std::span<const uint8_t> frame,
                   FramedReplies& replies);

 private:
  Socks5UdpRelay(WorkerContext& worker, Fd socket, const SocketAddress& bound,
                 const SocketAddress& client);
  void onClientReadable();
  /// Sends one client datagram to the server and counts it. `plain` is the datagram from ATYP
  /// on (the Shadowsocks packet's plaintext), `payload` its DATA.
  void forward(const crypto::SocksAddress& destination, std::span<const uint8_t> plain,
               std::span<const uint8_t> payload);
  /// Hands a reply to the client: `datagram` is RSV RSV FRAG, the source's address header and
  /// `payload` bytes of data (RSV and FRAG are written here). To the client's UDP address, or
  /// framed to replies_ once in framed mode.
  void deliver(std::span<uint8_t> datagram, size_t payload);
  void onServerReadable();
  /// The socket to the server, made on the first datagram. False if it could not be made.
  bool ensureServerSocket();
  /// --udp-over-tcp: the UoT stream (through a session of the worker), made on the first
  /// datagram and again after a stream ended. False if it could not be made.
  bool ensureStream(const crypto::SocksAddress& first_destination);
  void onStreamDatagram(const crypto::SocksAddress& source, std::span<const uint8_t> payload);
  /// The method and key of the association's server.
  const Credentials& credentials() const;

  WorkerContext& worker_;
  UdpStats& stats_;
  Fd socket_;
  const SocketAddress bound_;
  const SocketAddress client_;  // the control connection's peer: its IP is the only one taken
  SocketAddress peer_;          // where replies go: the client's last source address
  std::optional<IoWatcher> watcher_;  // of socket_; none in framed mode
  Fd server_socket_;
  std::optional<IoWatcher> server_watcher_;
  const size_t upstream_;  // the server's index in the worker's env().upstreams
  crypto::UdpCodec codec_;
  std::unique_ptr<Udp2022ClientSession> session2022_;  // 2022 methods: this association's
  TimePoint last_active_;
  std::unique_ptr<UotChannel> stream_;
  FramedReplies* replies_ = nullptr;  // set: framed mode, socket_ closed
};

}  // namespace shadowrelay::relay
