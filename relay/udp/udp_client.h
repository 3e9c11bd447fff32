// SPDX-License-Identifier: Apache-2.0
#pragma once
// The client side of the Shadowsocks UDP relay on one worker. `tunnel -U`: every datagram to
// the local port goes to the fixed -L destination through the server, and replies come back to
// each sender. One association (one socket connected to the server) per sender, in a bounded
// LRU table with idle expiry, like the server's. With --udp-over-tcp an association is a UDP over
// TCP stream instead (relay/udp/uot.h), through a tunnel session of the worker. With a 2022
// method each association is its own client session (relay/udp/udp2022_session.h).
//
// Several servers (relay/upstream): a new association takes the balancer's best server and
// keeps it while that server is up; the first datagram of a sender after its server was marked
// down moves the association to the best one then (a new socket, a new 2022 session). A server
// that answers ICMP port unreachable (ECONNREFUSED on the association's socket) counts as a
// failed connect. UDP over TCP streams pick their server as every TCP session does.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/udp_codec.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/net/socket.h"
#include "relay/udp/udp_association.h"

namespace shadowrelay::relay {

class UpstreamBalancer;
class WorkerContext;

class UdpTunnel final : public UdpPort {
 public:
  /// `socket`: the bound local UDP socket. The servers are the worker's env().upstreams.
  UdpTunnel(WorkerContext& worker, Fd socket, const crypto::SocksAddress& destination,
            size_t max_associations);
  ~UdpTunnel() override;
  UdpTunnel(const UdpTunnel&) = delete;
  UdpTunnel& operator=(const UdpTunnel&) = delete;

  const UdpStats& stats() const override { return stats_; }
  size_t associationCount() const override { return table_.size(); }

 private:
  void onReadable();
  /// One datagram of `n` bytes at `data`, with room for the destination header before it.
  void onDatagram(const SocketAddress& from, uint8_t* data, size_t n);
  void onReply(UdpAssociation& association);
  /// --udp-over-tcp: a new association is a UoT stream through a tunnel session to the server.
  UdpAssociationTable::Entry* addStream(const std::string& key, const SocketAddress& from);
  /// The association of a new sender: a socket connected to the best server (and, for 2022,
  /// the sender's own client session). Null if the socket could not be made.
  UdpAssociationTable::Entry* addSocket(const std::string& key, const SocketAddress& from);
  /// Seals the datagram of `n` bytes at `data` (the destination header written before it) into
  /// out_. @return the packet size, 0 on failure.
  size_t seal(UdpAssociation& association, uint8_t* data, size_t n);

  WorkerContext& worker_;
  Fd socket_;
  UpstreamBalancer& upstreams_;
  IoWatcher watcher_;
  std::vector<crypto::UdpCodec> codecs_;  // index = server
  UdpStats stats_;
  UdpAssociationTable table_;
  std::unique_ptr<uint8_t[]> buf_;
  std::unique_ptr<uint8_t[]> out_;
  size_t header_size_;
  size_t max_payload_ = 0;  // the largest datagram that still fits one sealed packet
  const crypto::SocksAddress destination_;
  const bool over_tcp_;
};

}  // namespace shadowrelay::relay
