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

#include "absl/container/flat_hash_map.h"
#include "crypto/address.h"
#include "crypto/udp_codec.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/net/socket.h"
#include "relay/udp/datagram_router.h"
#include "relay/udp/udp_association.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay {

class WorkerContext;

class UdpServer final : public UdpPort {
 public:
  /// `user_port`: the dedicated port this socket serves (0: the shared port); its users come
  /// from the worker's table.
  UdpServer(WorkerContext& worker, Fd socket, size_t max_associations, uint16_t user_port = 0);
  ~UdpServer() override;
  UdpServer(const UdpServer&) = delete;
  UdpServer& operator=(const UdpServer&) = delete;

  const UdpStats& stats() const override { return stats_; }
  static constexpr size_t kRecvBatch = udp::kRecvBatch;  // datagrams per recvmmsg
  size_t associationCount() const override { return table_.size(); }
  /// Drops the associations of users that `table` no longer has as they were.
  void revoke(const UserTable& table) override;

 private:
  static constexpr size_t kMaxPendingResolves = 1024;
  static constexpr size_t kRecvSlot = 1 << 16;  // bytes per datagram slot (> kMaxDatagram)

  void onReadable();
  void onPacket(const SocketAddress& from, uint8_t* packet, size_t len);
  /// Opens `packet` with the key of a user of this port: the peer's association's user first,
  /// then trial decryption. Plaintext into plain_. nullptr when no key opens it.
  RelayUserPtr openPacket(const SocketAddress& from, const std::string& key, const uint8_t* packet,
                          size_t len, size_t* plain_len);
  crypto::UdpCodec& codecFor(const RelayUser& user);
  void forward(const std::string& key, const SocketAddress& client, const RelayUserPtr& user,
               const SocketAddress& target, const uint8_t* payload, size_t len);
  void onReply(UdpAssociation& association);

  WorkerContext& worker_;
  Fd socket_;
  IoWatcher watcher_;
  const uint16_t user_port_;
  /// One codec per method of the users seen (a codec reuses its cipher context).
  absl::flat_hash_map<const crypto::MethodInfo*, std::unique_ptr<crypto::UdpCodec>> codecs_;
  UdpStats stats_;
  UdpAssociationTable table_;
  std::unique_ptr<uint8_t[]> buf_;
  std::unique_ptr<uint8_t[]> out_;
  std::unique_ptr<uint8_t[]> plain_;  // an opened packet (trials never write into the packet)
  const size_t recv_batch_;
  std::unique_ptr<uint8_t[]> batch_;  // kRecvBatch slots for recvmmsg
  DatagramRouter router_;  // declared last: its pending callbacks reach the members above
};

}  // namespace shadowrelay::relay
