// SPDX-License-Identifier: Apache-2.0
#pragma once
// The server side of the Shadowsocks UDP relay (SIP004, PROTOCOL.md §1.6) on one worker:
//
//   client ──[salt | Seal(address | payload)]──▶ UDP port ──▶ association ──payload──▶ target
//   client ◀──[salt | Seal(source | payload)]─── UDP port ◀── association ◀──payload── target
//
// One association (one outbound socket) per client address, in a bounded LRU table
// (--udp-max-associations, eviction counted) whose entries expire after the idle timeout
// (30 s when the last target was port 53). Bad packets are dropped and counted; nothing is ever
// sent back for them.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "crypto/address.h"
#include "crypto/udp_codec.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/net/socket.h"
#include "relay/udp/datagram_router.h"
#include "relay/udp/udp_association.h"

namespace shadowrelay::relay {

class Worker;

class UdpServer {
 public:
  UdpServer(Worker& worker, Fd socket, size_t max_associations);
  ~UdpServer();
  UdpServer(const UdpServer&) = delete;
  UdpServer& operator=(const UdpServer&) = delete;

  const UdpStats& stats() const { return stats_; }
  static constexpr size_t kRecvBatch = 16;      // datagrams per recvmmsg
  size_t associationCount() const { return table_.size(); }

 private:
  static constexpr size_t kMaxPendingResolves = 1024;
  static constexpr size_t kRecvSlot = 1 << 16;  // bytes per datagram slot (> kMaxDatagram)

  void onReadable();
  void onPacket(const SocketAddress& from, uint8_t* packet, size_t len);
  void forward(const std::string& key, const SocketAddress& client, const SocketAddress& target,
               const uint8_t* payload, size_t len);
  void onReply(UdpAssociation& association);

  Worker& worker_;
  Fd socket_;
  IoWatcher watcher_;
  crypto::UdpCodec codec_;
  UdpStats stats_;
  UdpAssociationTable table_;
  std::unique_ptr<uint8_t[]> buf_;
  std::unique_ptr<uint8_t[]> out_;
  const size_t recv_batch_;
  std::unique_ptr<uint8_t[]> batch_;  // kRecvBatch slots for recvmmsg
  DatagramRouter router_;  // declared last: its pending callbacks reach the members above
};

}  // namespace shadowrelay::relay
