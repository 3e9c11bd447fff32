// SPDX-License-Identifier: Apache-2.0
#pragma once
// One relay worker: a loop's listeners, sessions, UDP ports, resolver and scratch buffers.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "crypto/address.h"
#include "dns/resolver.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/event/timer.h"
#include "relay/net/preauth_limits.h"
#include "relay/net/socket.h"
#include "relay/stats/relay_sample.h"
#include "relay/stats/tcp_stats.h"
#include "relay/stats/udp_stats.h"
#include "relay/tcp/session_host.h"
#include "relay/tcp/session_io_batch.h"
#include "relay/udp/udp_association.h"
#include "relay/users/user_matcher.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay {

class LoopEventDriver;

/// Per-worker state. Lives on its loop's thread; every method is loop-thread only.
class Worker final : public SessionHost {
 public:
  Worker(EventLoop& loop, const RelayEnv& env, size_t index);
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Creates the resolver (needs the loop thread). Error: the resolver could not start.
  absl::Status init();

  // relay::WorkerContext
  EventLoop& loop() override { return loop_; }
  const RelayEnv& env() const override { return env_; }
  dns::Resolver& resolver() override { return *resolver_; }
  TcpStats& stats() override { return sample_.tcp; }
  UdpStats& udpStats() override { return udp_stats_; }
  WorkerSample& sample() override { return sample_; }
  UserTraffic& traffic(absl::string_view name) override;
  UserMatcher& users() override { return users_; }
  WorkerBudgets& budgets() override { return budgets_; }
  uint8_t* scratchIn() override { return scratch_in_.get(); }
  uint8_t* scratchOut() override { return scratch_out_.get(); }
  void startStream(Fd fd, const crypto::SocksAddress& target) override;

  // relay::SessionHost
  uint64_t nextSessionId() override { return next_session_id_++; }
  void releaseSession(TcpSession& session) override;
  SessionIoBatch& ioBatch() override { return io_batch_; }

  size_t index() const { return index_; }
  /// Every UDP counter of this worker: udpStats() and its UDP ports.
  UdpStats udpTotals() const;
  size_t udpAssociationCount() const;
  /// Hands a copy of sample() to env().observer (also done once a second by a timer).
  void publishSample();

  /// Swaps in a new user table; closes the sessions and UDP associations of users that are gone,
  /// disabled, over quota or have a new key.
  void setUsers(UserTablePtr table);

  /// Starts accepting on `fd` (already listening). Several per worker are fine. `user_port`: the
  /// dedicated port of a user (0: the shared port).
  void addListener(Fd fd, uint16_t user_port = 0);
  /// Takes over a UDP port made for this worker (server -u: a UdpServer, or a Udp2022Server for
  /// a 2022 method, for the users of `user_port`; tunnel -u: a UdpTunnel).
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
  /// Closes every session now (graceful stop's deadline).
  void closeAllSessions();

  /// Server: the connections of this worker that have not authenticated yet.
  uint32_t preauthCount() const { return preauth_.held(); }

  bool usingIoUring() const { return io_batch_.usingIoUring(); }
  uint64_t ioSyscallsForTest() const { return io_batch_.syscallsForTest(); }

 private:
  class Listener;
  class DnsObserver;

  void onAccepted(Fd fd, const SocketAddress& peer, uint16_t user_port);
  /// Out of descriptors: frees a reserve of the shared pool, accepts one connection of
  /// `listen_fd` on it, closes it (counted) and opens the reserve again. 1: one closed; 0: none
  /// was queued; -1: no reserve left, or accept failed otherwise.
  int shedOnReserve(int listen_fd);
  /// Registers `session` and starts it.
  void adopt(std::unique_ptr<TcpSession> session);

  EventLoop& loop_;
  const RelayEnv& env_;
  const size_t index_;
  std::unique_ptr<LoopEventDriver> driver_;
  std::unique_ptr<DnsObserver> dns_observer_;
  std::unique_ptr<dns::Resolver> resolver_;
  std::unique_ptr<uint8_t[]> scratch_in_;
  std::unique_ptr<uint8_t[]> scratch_out_;
  WorkerBudgets budgets_;  // before sessions_ and udp_ports_: what they hold is counted here
  SessionIoBatch io_batch_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<TcpSession>> sessions_;
  uint64_t next_session_id_;
  WorkerSample sample_;
  UdpStats udp_stats_;
  UserMatcher users_;
  PreauthGate preauth_;  // outlives the sessions' slots: they give them back in close()
  // This worker added a descriptor (/dev/null) to the pool given up when accept() fails with
  // EMFILE/ENFILE (worker.cc, accept_table_mutex).
  bool in_reserve_pool_ = false;
  std::vector<std::pair<uint16_t, std::unique_ptr<UdpPort>>> udp_ports_;
  std::optional<Timer> publish_timer_;
  TimePoint last_publish_{};
};

}  // namespace shadowrelay::relay
