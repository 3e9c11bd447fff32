// SPDX-License-Identifier: Apache-2.0
#pragma once
// The server side of the Shadowsocks UDP relay (SIP004, PROTOCOL.md §1.6) on one worker:
//
//   client ──[salt | Seal(address | payload)]──▶ UDP port ──▶ association ──payload──▶ target
//   client ◀──[salt | Seal(source | payload)]─── UDP port ◀── association ◀──payload── target
//
// One association (one outbound socket) per user and client address, in a bounded LRU table
// (--udp-max-associations, eviction counted) whose entries expire after the idle timeout
// (30 s when the last target was port 53). Keyed by the user too, so that a packet in another
// user's key never takes over a mapping (and its replies); a user holds at most
// --udp-user-max-associations of the table, so that one user cannot evict everyone else's. Bad
// packets are dropped and counted; nothing is ever sent back for them.
//
// Which user a datagram is from (a multi-user port, issue 15 §1): the user its source address
// spoke last (else the one its IP matched last, over TCP too), one open; else trial decryption over at most --udp-max-trials of the port's users
// (a larger port is walked a window at a time, one window per datagram from the source), paid
// for failed trials from the worker's and the source's budgets (WorkerBudgets); with both spent
// the datagram is dropped untried (dropped reason trial_budget). A datagram too short to hold an
// address header is never tried. At most kDatagramsPerEvent are read per readiness event, so the
// worker's other sessions get their turn during a flood.
//
// Every datagram is checked against the worker's current user table when it is forwarded (also
// after a DNS wait) and every reply when it is sealed: a user deleted, disabled, rotated or over
// quota meanwhile relays nothing more (dropped reason revoked).

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
  /// Datagrams read per readiness event: two recvmmsg batches, half of what the other ports
  /// read, since a datagram here can cost trial decryption as well.
  static constexpr int kDatagramsPerEvent = 2 * static_cast<int>(udp::kRecvBatch);
  size_t associationCount() const override { return table_.size(); }
  /// Drops the associations of users that `table` no longer has as they were.
  void revoke(const UserTable& table) override;

 private:
  static constexpr size_t kMaxPendingResolves = 1024;
  static constexpr size_t kRecvSlot = 1 << 16;  // bytes per datagram slot (> kMaxDatagram)

  void onReadable();
  void onPacket(const SocketAddress& from, uint8_t* packet, size_t len);
  enum class Opened { Yes, NoKey, OverBudget };
  /// Opens `packet` with the key of a user of this port (see above). Plaintext into plain_.
  /// nullptr when no key opens it (`*why`: NoKey, or OverBudget when trials were cut short).
  RelayUserPtr openPacket(const SocketAddress& from, const std::string& peer,
                          const uint8_t* packet, size_t len, size_t* plain_len, Opened* why);
  crypto::UdpCodec& codecFor(const RelayUser& user);
  void forward(const SocketAddress& client, const RelayUserPtr& user, const SocketAddress& target,
               const uint8_t* payload, size_t len);
  /// The associations one user may hold here (--udp-user-max-associations; 0: a quarter of the
  /// table when the port has several users, all of it for one).
  size_t userCap() const;
  void onReply(UdpAssociation& association);

  WorkerContext& worker_;
  Fd socket_;
  IoWatcher watcher_;
  const uint16_t user_port_;
  /// One codec per method of the users seen (a codec reuses its cipher context).
  absl::flat_hash_map<const crypto::MethodInfo*, std::unique_ptr<crypto::UdpCodec>> codecs_;
  UdpStats stats_;
  const size_t max_associations_;
  /// Peer address → the name of the user it spoke last (dropped all at once beyond
  /// kMaxPeerHints): the one open tried before any trial decryption.
  absl::flat_hash_map<std::string, std::string> peer_user_;
  UserAssociationCount per_user_;  // before table_: the associations' slots count into it
  UdpAssociationTable table_;
  std::unique_ptr<uint8_t[]> buf_;
  std::unique_ptr<uint8_t[]> out_;
  std::unique_ptr<uint8_t[]> plain_;  // an opened packet (trials never write into the packet)
  const size_t recv_batch_;
  std::unique_ptr<uint8_t[]> batch_;  // kRecvBatch slots for recvmmsg
  DatagramRouter router_;  // declared last: its pending callbacks reach the members above
};

}  // namespace shadowrelay::relay
