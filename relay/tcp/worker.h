// SPDX-License-Identifier: Apache-2.0
#pragma once
// One relay worker: a loop's listeners, sessions, resolver and scratch buffers.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "crypto/address.h"
#include "crypto/aead.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/salt_filter.h"
#include "dns/dns_cache.h"
#include "dns/resolver.h"
#include "relay/config.h"
#include "relay/event/event_loop.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/net/io_batch.h"
#include "relay/net/socket.h"
#include "relay/stats/relay_sample.h"
#include "relay/stats/tcp_stats.h"
#include "relay/udp/udp_association.h"
#include "relay/users/user_matcher.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay {

class LoopEventDriver;
class TcpSession;

/// The key a client (local, tunnel) speaks with. The server's keys are its users (UserTable).
struct Credentials {
  const crypto::MethodInfo* method = nullptr;
  const crypto::AeadProvider* provider = nullptr;
  crypto::MasterKey master;
};

/// What every worker reads and nobody writes after start-up. Owned by the role runner; outlives
/// the workers.
struct RelayEnv {
  Config config;
  Credentials credentials;
  crypto::SaltFilter* salt_filter = nullptr;  // server: client and own salts
  dns::DnsCache* dns_cache = nullptr;
  dns::AddressPreference preference = dns::AddressPreference::Ipv4First;
  std::optional<crypto::SocksAddress> tunnel_target;  // tunnel: -L
  std::chrono::milliseconds first_data_wait{50};      // local/tunnel: bundle the first data
  std::chrono::seconds idle_timeout{300};
  std::chrono::seconds handshake_timeout{60};
  std::chrono::seconds connect_timeout{10};
  bool io_uring = true;  // batch the relay's reads and writes through io_uring when available
  std::chrono::seconds udp_timeout{300};    // --udp-timeout; 30 s for port 53 targets
  size_t udp_max_associations = 16384;      // --udp-max-associations
  std::optional<SocketAddress> udp_server;  // local -u: the server's UDP address
  /// Receives each worker's counters once a second (the metrics exporter); may be null.
  RelayObserver* observer = nullptr;
};

/// Per-worker state. Lives on its loop's thread; every method is loop-thread only.
class Worker {
 public:
  /// Reads per event and the largest read: four full AEAD chunks of payload.
  static constexpr size_t kReadSize = 4 * 0x3FFF;
  static constexpr size_t kScratchSize = kReadSize + 0x3FFF + 256;

  Worker(EventLoop& loop, const RelayEnv& env, size_t index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Creates the resolver (needs the loop thread). Error: the resolver could not start.
  absl::Status init();

  EventLoop& loop() { return loop_; }
  const RelayEnv& env() const { return env_; }
  dns::Resolver& resolver() { return *resolver_; }
  size_t index() const { return index_; }
  TcpStats& stats() { return sample_.tcp; }
  /// What the SOCKS5 UDP associations and UDP over TCP of this worker relayed.
  UdpStats& udpStats() { return udp_stats_; }
  /// Every UDP counter of this worker: udpStats() and its UDP ports.
  UdpStats udpTotals() const;
  size_t udpAssociationCount() const;
  /// This worker's counters for the metrics exporter.
  WorkerSample& sample() { return sample_; }
  /// The traffic entry of user `name` ("" for none); the reference stays valid.
  UserTraffic& traffic(absl::string_view name);
  /// Hands a copy of sample() to env().observer (also done once a second by a timer).
  void publishSample();

  /// Server: the users, and the trial decryption over them.
  UserMatcher& users() { return users_; }
  /// Swaps in a new user table; closes the sessions and UDP associations of users that are gone,
  /// disabled, over quota or have a new key.
  void setUsers(UserTablePtr table);

  uint8_t* scratchIn() { return scratch_in_.get(); }
  uint8_t* scratchOut() { return scratch_out_.get(); }

  /// Starts accepting on `fd` (already listening). Several per worker are fine. `user_port`: the
  /// dedicated port of a user (0: the shared port).
  void addListener(Fd fd, uint16_t user_port = 0);
  /// Takes over a UDP port made for this worker (server -u: a UdpServer for the users of
  /// `user_port`; tunnel -u: a UdpTunnel).
  void addUdpPort(std::unique_ptr<UdpPort> port, uint16_t user_port = 0);
  /// Closes the TCP listeners and UDP ports of a dedicated port (its user went away).
  void closePort(uint16_t user_port);
  /// Closes the listeners; running sessions continue.
  void stopAccepting();
  /// Closes the UDP ports (and their associations).
  void closeUdp();
  size_t sessionCount() const { return sessions_.size(); }
  /// Sum of TcpSession::bufferedBytes() over the open sessions.
  size_t bufferedBytes() const;
  /// The port of the first listener (tests bind port 0).
  uint16_t listenPortForTest() const;
  /// Relays `fd` (one end of a socket pair) to `target` through the Shadowsocks server, like a
  /// tunnel connection: the stream of UDP over TCP.
  void startStream(Fd fd, const crypto::SocksAddress& target);
  /// Closes every session now (graceful stop's deadline).
  void closeAllSessions();

  /// Called by a session from close(): unregisters it and frees it after the event batch.
  void releaseSession(TcpSession& session);
  uint64_t nextSessionId() { return next_session_id_++; }

  /// Relay-phase I/O of a session direction, performed with the other queued operations at
  /// the end of this loop iteration (runBatch()).
  void queueRecv(TcpSession& session, uint8_t dir);
  void queueSend(TcpSession& session, uint8_t dir);
  bool usingIoUring() const { return io_ != nullptr && io_->usingUring(); }
  uint64_t ioSyscallsForTest() const { return io_ ? io_->syscalls() : 0; }

 private:
  class Listener;
  class DnsObserver;
  struct RecvOp {
    TcpSession* session;
    uint8_t dir;
  };
  struct SendOp {
    TcpSession* session;
    uint8_t dir;
    const uint8_t* data;  // filled from pending_out when from_pending
    size_t len;
    bool from_pending;
  };

  void onAccepted(Fd fd, const SocketAddress& peer, uint16_t user_port);
  void scheduleBatch();
  void runBatch();
  void runSends();
  void touch(TcpSession& session);
  uint8_t* poolBuffer(std::vector<std::unique_ptr<uint8_t[]>>& pool, size_t i);

  EventLoop& loop_;
  const RelayEnv& env_;
  const size_t index_;
  std::unique_ptr<LoopEventDriver> driver_;
  std::unique_ptr<DnsObserver> dns_observer_;
  std::unique_ptr<dns::Resolver> resolver_;
  std::unique_ptr<uint8_t[]> scratch_in_;
  std::unique_ptr<uint8_t[]> scratch_out_;
  std::unique_ptr<IoBatch> io_;
  std::vector<RecvOp> recv_ops_;
  std::vector<SendOp> send_ops_;
  std::vector<TcpSession*> touched_;
  // The lists being worked through; swapped with the queues above to keep their capacity.
  std::vector<RecvOp> recv_running_;
  std::vector<SendOp> send_running_;
  std::vector<TcpSession*> touched_running_;
  std::vector<size_t> have_;
  std::vector<std::unique_ptr<uint8_t[]>> in_pool_;
  std::vector<std::unique_ptr<uint8_t[]>> out_pool_;
  bool batch_scheduled_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::vector<std::unique_ptr<Listener>> listeners_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<TcpSession>> sessions_;
  uint64_t next_session_id_;
  WorkerSample sample_;
  UdpStats udp_stats_;
  UserMatcher users_;
  std::vector<std::pair<uint16_t, std::unique_ptr<UdpPort>>> udp_ports_;
  std::optional<Timer> publish_timer_;
  TimePoint last_publish_{};
};

}  // namespace shadowrelay::relay
