// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the server port and the tunnel port of the UDP relay share: the per-peer association
// (a socket that talks to the far side on the peer's behalf), the bounded table that holds
// them, and the counters.

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "crypto/address.h"
#include "crypto/udp_codec.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/net/endpoint.h"
#include "relay/net/socket.h"
#include "relay/udp/lru_table.h"
#include "relay/stats/relay_sample.h"
#include "relay/stats/udp_stats.h"
#include "relay/udp/udp2022_session.h"
#include "relay/udp/uot.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay {

class EventLoop;
class WorkerContext;

namespace udp {
inline constexpr size_t kMaxDatagram = 65535;
inline constexpr size_t kMaxUdpPayload = 65507;  // IPv4: 65535 - 20 (IP) - 8 (UDP)
inline constexpr int kPacketsPerEvent = 64;      // datagrams read per readiness event
inline constexpr size_t kRecvBatch = 16;         // datagrams per recvmmsg at most
/// The server ports' recvmmsg batch: kRecvBatch, or SHADOWRELAY_UDP_RECV_BATCH=N (1..16) for
/// measuring recvmmsg against one datagram per call.
size_t recvBatchSize();
}  // namespace udp

/// How many associations each user holds in one table: the per-user cap
/// (--udp-user-max-associations, issue 15 §4), so that one user cannot evict everyone else's
/// mappings. Must outlive the slots it hands out (declare it before the table).
class UserAssociationCount {
 public:
  /// One association of a user, counted while it lives (move-only).
  class Slot {
   public:
    Slot() = default;
    Slot(UserAssociationCount* owner, std::string name)
        : owner_(owner), name_(std::move(name)) {}
    Slot(Slot&& other) noexcept : owner_(other.owner_), name_(std::move(other.name_)) {
      other.owner_ = nullptr;
    }
    Slot& operator=(Slot&& other) noexcept;
    ~Slot() { release(); }

   private:
    void release();
    UserAssociationCount* owner_ = nullptr;
    std::string name_;
  };

  size_t of(const std::string& name) const {
    auto it = counts_.find(name);
    return it == counts_.end() ? 0 : it->second;
  }
  Slot take(const std::string& name) {
    ++counts_[name];
    return Slot(this, name);
  }

 private:
  absl::flat_hash_map<std::string, size_t> counts_;
};

/// One peer's association.
struct UdpAssociation {
  std::string key;   // the peer's address bytes (the table key)
  SocketAddress peer;
  Fd fd;             // the socket for the far side
  int family = AF_UNSPEC;  // of fd
  std::optional<IoWatcher> watcher;
  std::unique_ptr<UotChannel> uot;  // instead of fd: a UDP-over-TCP stream to the server
  /// Server: the user whose key the peer speaks, and its traffic entry on this worker.
  RelayUserPtr user;
  UserTraffic* traffic = nullptr;
  UserAssociationCount::Slot user_slot;  // server: counts it under its user
  DeviceLease device;  // server: the peer's network, active among its user's devices meanwhile
  /// Shadowsocks 2022: the server's view of the client session (server port), or the client
  /// session this association speaks (tunnel). Null for 2017 methods.
  std::unique_ptr<Udp2022ServerSession> server2022;
  std::unique_ptr<Udp2022ClientSession> client2022;
  /// Tunnel: the server it goes through (an index of the relay/upstream balancer).
  size_t upstream = 0;
};

/// Server: a new association of `user` from `peer` counts `peer`'s network among the user's
/// devices while the returned lease lives. nullopt when it is a new device beyond max_devices:
/// refused, counted under the user as refused_over_devices.
std::optional<DeviceLease> admitDevice(WorkerContext& worker, const RelayUser& user,
                                       const SocketAddress& peer);

/// The key of a peer address in a UdpAssociationTable.
std::string udpPeerKey(const SocketAddress& address);

/// A reply from the Shadowsocks server, opened in place: `plain` (at packet + salt size) holds the
/// source address header (`header` bytes), then the payload; `len` counts both.
struct OpenedReply {
  uint8_t* plain = nullptr;
  size_t len = 0;
  size_t header = 0;
};
/// Opens a server's reply packet of `len` bytes in place. A packet that is too short or does not
/// open counts as dropped_open, a bad source header as dropped_address; both return nullopt.
std::optional<OpenedReply> openReply(crypto::UdpCodec& codec, std::span<const uint8_t> master,
                                     uint8_t* packet, size_t len, UdpStats& stats);

/// Reads what `fd` has, up to `max_datagrams` (≤ kPacketsPerEvent), with recvmmsg calls of up to `batch`
/// (≤ kRecvBatch) datagrams each: datagram i of a call lands at slots + i * slot_size + offset
/// (up to kMaxDatagram bytes) and goes to `on_datagram` with its sender and size.
void receiveDatagrams(int fd, uint8_t* slots, size_t slot_size, size_t offset, size_t batch,
                      absl::FunctionRef<void(const SocketAddress& from, uint8_t* data, size_t n)>
                          on_datagram,
                      int max_datagrams = udp::kPacketsPerEvent);

/// A non-blocking socket for sending datagrams anywhere: dual-stack AF_INET6 (IPv4 through
/// mapped addresses), or AF_INET on hosts without IPv6. `*family` says which; invalid on error.
Fd openRelaySocket(int* family);

/// Associations of one UDP port on one loop: at most `capacity` (least recently used evicted),
/// each expiring after its idle timeout (checked once a second). Counts into `stats`.
class UdpAssociationTable {
 public:
  using Clock = std::chrono::steady_clock;
  using Entry = LruTable<std::string, std::unique_ptr<UdpAssociation>>::Entry;

  /// `shortest_timeout`: no entry expires sooner (bounds the expiry walk).
  UdpAssociationTable(EventLoop& loop, size_t capacity, Clock::duration shortest_timeout,
                      UdpStats& stats);

  /// The entry of `key`, marked used now; null if none.
  Entry* find(const std::string& key) { return table_.touch(key, Clock::now()); }
  /// The entry of `key` without marking it used; null if none.
  Entry* peek(const std::string& key) { return table_.peek(key); }
  /// Marks the association of a reply as used.
  void touch(const UdpAssociation& association) { table_.touch(association.key, Clock::now()); }
  /// Adds the association of `peer` over `fd` (of `family`); `on_readable` runs when fd has
  /// something to read. Evicts the least recently used entry of a full table.
  Entry& add(std::string key, const SocketAddress& peer, Fd fd, int family,
             Clock::duration idle_timeout, std::function<void(UdpAssociation&)> on_readable);
  /// Adds the association of `peer` over a UDP-over-TCP channel (made by `make_channel`, which
  /// gets the association it will belong to).
  Entry& addStream(std::string key, const SocketAddress& peer, Clock::duration idle_timeout,
                   const std::function<std::unique_ptr<UotChannel>(UdpAssociation&)>&
                       make_channel);
  /// Removes the association of `key` (its stream ended).
  void erase(const std::string& key) { table_.erase(key); }
  /// Removes the associations for which `pred` is true.
  void eraseIf(const std::function<bool(const UdpAssociation&)>& pred);
  size_t size() const { return table_.size(); }

 private:
  void sweep();
  Entry& insert(std::string key, std::unique_ptr<UdpAssociation> association,
                Clock::duration idle_timeout);

  EventLoop& loop_;
  LruTable<std::string, std::unique_ptr<UdpAssociation>> table_;
  const Clock::duration shortest_timeout_;
  UdpStats& stats_;
  Timer sweep_timer_;
};

/// A UDP port a worker owns (the server's port, a tunnel's port): what the worker asks of it.
class UdpPort {
 public:
  virtual ~UdpPort() = default;
  virtual const UdpStats& stats() const = 0;
  virtual size_t associationCount() const = 0;
  /// Server: drops the associations of users that `table` no longer has as they were.
  virtual void revoke(const UserTable& table) { (void)table; }
};

}  // namespace shadowrelay::relay
