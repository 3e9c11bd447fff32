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
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "crypto/address.h"
#include "crypto/udp_codec.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/net/socket.h"
#include "relay/udp/lru_table.h"

namespace shadowrelay::relay {

class Worker;

struct UdpStats {
  uint64_t packets_in = 0;         // from clients, opened and forwarded
  uint64_t packets_out = 0;        // to clients
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t dropped_open = 0;       // too short or did not open
  uint64_t dropped_replay = 0;
  uint64_t dropped_address = 0;
  uint64_t dropped_refused = 0;    // private target
  uint64_t dropped_resolve = 0;
  uint64_t dropped_send = 0;       // sendto failed (target or client)
  uint64_t dropped_too_big = 0;    // reply larger than a UDP datagram can carry
  uint64_t associations = 0;       // created
  uint64_t evictions = 0;
  uint64_t expirations = 0;

  void add(const UdpStats& other);
  std::string summary() const;
};

class UdpServer {
 public:
  UdpServer(Worker& worker, Fd socket, size_t max_associations);
  ~UdpServer();
  UdpServer(const UdpServer&) = delete;
  UdpServer& operator=(const UdpServer&) = delete;

  const UdpStats& stats() const { return stats_; }
  size_t associationCount() const { return table_.size(); }

 private:
  struct Association;
  struct PendingResolve;
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxPendingResolves = 1024;
  using Table = LruTable<std::string, std::unique_ptr<Association>>;

  void onReadable();
  void onPacket(const SocketAddress& from, uint8_t* packet, size_t len);
  void forward(const std::string& key, const SocketAddress& client, const SocketAddress& target,
               const uint8_t* payload, size_t len);
  void onReply(Association& association);
  void sweep();

  Worker& worker_;
  Fd socket_;
  IoWatcher watcher_;
  Timer sweep_timer_;
  crypto::UdpCodec codec_;
  Table table_;
  UdpStats stats_;
  std::unique_ptr<uint8_t[]> buf_;
  std::unique_ptr<uint8_t[]> out_;
  std::list<PendingResolve> pending_;  // datagrams waiting for a name; bounded
};

}  // namespace shadowrelay::relay
