// SPDX-License-Identifier: Apache-2.0
#pragma once
// The server side of Shadowsocks 2022 UDP (PROTOCOL.md §2.5, §2.6) on one port:
//
//   client ──[separate header | Seal(type 0 | ts | P | padding | address | payload)]──▶ port
//          ──▶ session (by client session ID) ──payload──▶ target
//   client ◀──[our session ID, our packet ID | Seal(type 1 | ts | client session ID | ...)]──
//
// A session, not an address, is the unit: the table is keyed by the client's session ID, so a
// client whose address or port changes keeps its association (its outbound socket, its
// window); replies go to the last address from which a fully validated packet came. Each session
// has our own random session ID and packet counter for replies, and a packet-ID window
// (crypto/packet_window.h) that moves only after a packet opened and passed every check (tag,
// type, timestamp ±30 s, address). Bad packets are dropped and counted (open, stale_timestamp,
// replayed_packet_id, address, ...), never answered. The table is bounded
// (--udp-max-associations, least recently used evicted) and a session idle for the timeout
// expires, never sooner than kMinSessionLifetime: a packet stays fresh for up to 60 s, and a
// session forgotten sooner would let its replay in as a new one. Known gap: a session evicted
// from a full table loses its window with it, so its packets of the last minute, replayed, would
// start it again (once each); the table's bound is what keeps eviction rare. One user holds at
// most --udp-user-max-associations sessions (by default a quarter of the table when the port has
// several users), so that it cannot evict everyone else's; a datagram is forwarded only while
// the worker's current table keeps its session's user (also after a DNS wait).
//
// One socket for the whole port, on one worker (ServerRuntime binds it so): the kernel spreads a
// SO_REUSEPORT group by 4-tuple, so after a client's source port changes its packets could reach
// another worker, which would not know the session (and cannot be steered by it: the session ID
// is encrypted). The cost is that 2022 UDP uses one core; docs/PERFORMANCE.md says more, with
// the alternative (a session directory shared by the workers, with hand-off).
//
// Whose packet this is, is decided in one place (userOf). A port with one PSK (the server's -k
// default user, or one API user) opens with that key. A port with SIP023 users (PROTOCOL.md
// §2.7, relay/users/port_identity.h) opens the separate header with the iPSK and finds the user
// by the one identity header: one AES block and one hash lookup, no trial decryption; the body
// is keyed with that user's uPSK. Replies carry no identity header and are sealed with the
// session's user's PSK, so each session has its own sealer.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "crypto/address.h"
#include "crypto/aead2022_udp.h"
#include "relay/event/io_watcher.h"
#include "relay/net/socket.h"
#include "relay/udp/datagram_router.h"
#include "relay/udp/udp_association.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay {

class WorkerContext;

class Udp2022Server final : public UdpPort {
 public:
  /// A session lives at least this long after its last packet (see above).
  static constexpr auto kMinSessionLifetime =
      std::chrono::seconds(2 * 30 + 1);  // 2 x kMaxTimestampSkew, and the second it rounds

  /// `user_port`: the dedicated port this socket serves (0: the shared port).
  Udp2022Server(WorkerContext& worker, Fd socket, size_t max_associations, uint16_t user_port = 0);
  ~Udp2022Server() override;
  Udp2022Server(const Udp2022Server&) = delete;
  Udp2022Server& operator=(const Udp2022Server&) = delete;

  const UdpStats& stats() const override { return stats_; }
  size_t associationCount() const override { return table_.size(); }
  void revoke(const UserTable& table) override;

 private:
  static constexpr size_t kMaxPendingResolves = 1024;
  static constexpr size_t kRecvSlot = 1 << 16;

  void onReadable();
  void onPacket(const SocketAddress& from, const uint8_t* packet, size_t len);
  /// opener_ keyed for the current user table: with the port's identity key and its users
  /// (SIP023), or with its one user's PSK. False if nothing opens on the port (no 2022 user).
  bool keyOpener();
  /// Whose packet `opened` is: the one place a packet's user is found (the user its identity
  /// header names, or the port's one user); null if none.
  RelayUserPtr userOf(const crypto::OpenedPacket2022& opened) const;
  /// The session of a validated packet (made if new), its window moved and its peer set to
  /// `from`; null if the packet ID is a replay or no socket could be made (both counted).
  UdpAssociation* admit(const SocketAddress& from, const RelayUserPtr& user,
                        const crypto::PacketHeader2022& header);
  void forward(const std::string& key, const SocketAddress& target,
               std::span<const uint8_t> payload);
  void onReply(UdpAssociation& association);
  /// Sessions one user may hold here (as UdpServer::userCap).
  size_t userCap() const;
  /// The idle timeout of a session whose last packet went to `target_port` (0: none yet).
  std::chrono::steady_clock::duration idleTimeout(uint16_t target_port) const;

  WorkerContext& worker_;
  Fd socket_;
  IoWatcher watcher_;
  const uint16_t user_port_;
  UdpStats stats_;
  const size_t max_associations_;
  UserAssociationCount per_user_;  // before table_: the sessions' slots count into it
  UdpAssociationTable table_;
  // What opener_ is keyed for: the table (it owns the PortIdentity opener_ looks users up in)
  // and, on a port with one PSK, that user.
  UserTablePtr keyed_table_;
  RelayUserPtr port_user_;
  const PortIdentity* identity_ = nullptr;
  std::optional<crypto::Udp2022Opener> opener_;
  std::unique_ptr<uint8_t[]> plain_;  // an opened body
  std::unique_ptr<uint8_t[]> reply_;  // a target's reply, then its sealed packet
  std::unique_ptr<uint8_t[]> out_;
  const size_t recv_batch_;
  std::unique_ptr<uint8_t[]> batch_;  // udp::kRecvBatch slots for recvmmsg
  DatagramRouter router_;  // declared last: its pending callbacks reach the members above
};

}  // namespace shadowrelay::relay
