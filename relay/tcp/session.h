// SPDX-License-Identifier: Apache-2.0
#pragma once
// A relayed TCP connection: the client socket, the remote socket, and between them two
// directions, each either sealing (plain in, SIP004 out) or opening (SIP004 in, plain out).
//
//   client ──dir_[kUp]──▶ remote       server: up opens, down seals
//   client ◀─dir_[kDown]── remote      local/tunnel: up seals, down opens
//
// Subclasses run the handshake (SOCKS5, or the server's first chunk, resolve and connect), then
// call startRelay(). Every read, in the handshake too, goes through the host's batch of the loop
// iteration (session_io_batch.h). From startRelay() on this class moves bytes: read into a batch
// buffer, transform, write (batched as well; the handshake's few writes are direct);
// only what the peer does not take is parked in the session (ByteBuffer), and
// while anything is parked the source is not read (backpressure: at most one read's worth of
// unsent bytes per direction). EOF is forwarded per direction with shutdown(SHUT_WR).
// A user's bytes_per_second shapes the same way (issue 18 §3): each read is capped to what the
// user's rate bucket admits (relay/users/rate_bucket.h), and while it admits nothing the source
// is not read until a timer says the bucket has room again. Nothing is ever dropped.

#include <cstdint>
#include <optional>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead2022_stream.h"
#include "crypto/aead_stream.h"
#include "dns/ip_address.h"
#include "dns/resolver.h"
#include "relay/context/worker_context.h"
#include "relay/event/deferred_deletable.h"
#include "relay/event/event_types.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/net/socket.h"
#include "relay/tcp/byte_buffer.h"
#include "relay/stats/relay_sample.h"
#include "relay/stats/tcp_stats.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay {

class SessionHost;

class TcpSession : public DeferredDeletable {
 public:
  TcpSession(SessionHost& host, Fd client);
  ~TcpSession() override;
  TcpSession(const TcpSession&) = delete;
  TcpSession& operator=(const TcpSession&) = delete;

  /// Begins the handshake; called once after the host registered the session.
  virtual void start() = 0;
  /// Closes both sockets and hands the session to the host for deferred deletion.
  /// Idempotent; nothing of the session runs afterwards.
  void close(CloseReason reason);
  bool closed() const { return closed_; }
  uint64_t id() const { return id_; }
  /// Heap bytes parked in this session's buffers (capacity, not size): the part of a
  /// connection's memory that grows with traffic. Bounded by backpressure.
  size_t bufferedBytes() const;
  /// The user this session speaks for (server, once identified); null otherwise.
  const RelayUserPtr& user() const { return user_; }

  // The relay phase's reads and writes, run by the host's SessionIoBatch at the end of a loop
  // iteration; each result is reported back here, then afterBatch() runs once per session.
  /// A queued receive of `dir` is due: the socket to read and at most how much (`*want`), with
  /// the partial unit kept from the last read copied to the front of `buf` (`*have` bytes).
  /// `*want` is less than asked when a 2022 stream's partial unit, up to a whole 0xFFFF chunk,
  /// leaves less of the buffer. -1: nothing to read now.
  int takeRecv(uint8_t dir, uint8_t* buf, size_t* have, size_t* want);
  /// `result`: bytes read, 0 at EOF, or -errno. Relaying: transformed bytes to send go to `out`
  /// (`*out_len`); before startRelay(), the bytes go to onClientRead().
  void onRecvDone(uint8_t dir, uint8_t* buf, size_t have, long result, uint8_t* out,
                  size_t* out_len);
  /// A send of `dir` is due: the socket to write; with `from_pending`, `*data` and `*len` are
  /// set to the parked output. -1: nothing to send now.
  int takeSend(uint8_t dir, bool from_pending, const uint8_t** data, size_t* len);
  /// `result`: bytes written or -errno; what the socket did not take is parked.
  void onSendDone(uint8_t dir, const uint8_t* data, size_t len, bool from_pending, long result);
  /// Whether the session joined the current batch now (false: it already had).
  bool joinBatch();
  void afterBatch();

 protected:
  enum Side : uint8_t { kClient = 0, kRemote = 1 };
  enum DirIndex : uint8_t { kUp = 0, kDown = 1 };

  struct Direction {
    Side from = kClient;
    Side to = kRemote;
    // One transform per direction: a SIP004 sealer or opener, or (2022 methods) a 2022 one.
    crypto::AeadStreamEncoder* sealer = nullptr;
    crypto::AeadStreamDecoder* opener = nullptr;
    crypto::Aead2022StreamEncoder* sealer2022 = nullptr;
    crypto::Aead2022StreamDecoder* opener2022 = nullptr;
    ByteBuffer pending_in;   // opener: the partial unit read so far
    ByteBuffer pending_out;  // transformed bytes the sink has not taken yet
    bool eof = false;        // the source reached EOF
    bool shut = false;       // shutdown(SHUT_WR) sent to the sink
    bool recv_queued = false;  // in the host's SessionIoBatch
    bool send_queued = false;
    bool rate_paused = false;  // the user's rate bucket is spent: not read until rate_timer_
  };

  /// Handshake-phase events of either socket (before startRelay()).
  virtual void onHandshakeEvent(Side side, uint32_t events) = 0;
  /// Reads the client socket (at most `limit` bytes) with the loop iteration's other reads: every
  /// read of a session goes through the host's SessionIoBatch. The bytes come to onClientRead(),
  /// or, once startRelay() ran meanwhile, to the relay. No-op while a read is queued.
  void queueClientRead(size_t limit = WorkerContext::kReadSize);
  /// Before startRelay(): the result of queueClientRead(). `data` holds what was kept in
  /// dir_[kUp].pending_in (`have` bytes) followed by what was read; `result` is the number read,
  /// 0 at EOF, or -errno (EAGAIN included). The subclass counts the bytes (countIn).
  virtual void onClientRead(uint8_t* data, size_t have, long result) = 0;
  /// The session timer fired before startRelay() (handshake, connect, first-data deadlines).
  virtual void onHandshakeTimer() = 0;

  /// Resolves `target` (unless a literal) and connects the remote socket, trying each address
  /// in turn with the connect timeout per attempt. With `enforce_policy`, addresses that are
  /// not public unicast are refused unless --allow-private. On success onRemoteConnected()
  /// runs; on failure the session closes (ResolveFailed, TargetRefused, ConnectFailed,
  /// ConnectTimeout). `target` must outlive the attempt (a member of the subclass).
  void connectRemote(const crypto::SocksAddress& target, bool enforce_policy, bool fast_open);
  /// Uses `fd` (a connected stream socket, e.g. one end of a socket pair) as the remote side
  /// instead of connecting; onRemoteConnected() runs at once.
  void attachRemote(Fd fd);
  /// Must set the remote socket's interest (it is still kWritable from the connect).
  virtual void onRemoteConnected() = 0;
  /// connectRemote() failed (`reason`: ResolveFailed, TargetRefused, ConnectFailed or
  /// ConnectTimeout); the remote socket is already closed. Return true after starting another
  /// connectRemote() (a client's failover to its next server), false to close with `reason`.
  virtual bool onConnectFailed(CloseReason /*reason*/) { return false; }
  /// Runs once from close(), after both sockets closed: release what the subclass holds.
  virtual void onClose() {}
  bool connecting() const { return connect_phase_ != ConnectPhase::None; }
  /// Both sockets set, dir_ filled in (transforms and any parked bytes): relay from here on.
  void startRelay();
  /// Sets the watcher interest of one side.
  void watch(Side side, uint32_t interest);
  /// Writes `bytes` to a socket; returns how many were taken, or -errno on a hard error.
  ssize_t sendSome(Side side, const uint8_t* bytes, size_t n);

  /// Server: the session identified `user`; its traffic is counted under its name from now on,
  /// and it counts against the user's max_connections until it closes. Returns how many
  /// sessions of the user were open before this one (one atomic step, so that sessions starting
  /// at once on several workers cannot all take the last slot).
  uint32_t setUser(RelayUserPtr user);
  /// Bytes read from or written to a socket, for the host's counters and this session's.
  void countIn(Side side, size_t n);
  void countOut(Side side, size_t n);
  /// Payload bytes: upload is client to target, download target to client (plaintext).
  uint64_t payloadUp() const { return plain_at_remote_ ? to_remote_ : from_client_; }
  uint64_t payloadDown() const { return plain_at_remote_ ? from_remote_ : to_client_; }
  /// Bytes the client sent (as read from its socket).
  uint64_t bytesFromClient() const { return from_client_; }

  SessionHost& host_;
  /// Server sessions: the plaintext is on the remote side (the client side is sealed).
  bool plain_at_remote_ = false;
  Fd sock_[2];
  std::optional<IoWatcher> watcher_[2];
  Timer timer_;
  Direction dir_[2];
  TimePoint accepted_at_;

 private:
  enum class ConnectPhase : uint8_t { None, Resolving, Connecting };

  void onEvent(Side side, uint32_t events);
  void onTimer();
  /// The user's bytes_per_second now (0: unlimited, or no user).
  uint64_t rateLimit() const;
  /// Stops reading `dir` until the user's bucket has room again (rate_timer_).
  void pauseForRate(uint8_t dir, int64_t now);
  void onRateTimer();
  void onResolved(dns::ResolveResult result);
  void connectNext();
  /// Ends the connect attempt: the subclass may start another, else the session closes.
  void connectFailed(CloseReason reason);
  void onConnectEvent(uint32_t events);
  /// Writes d.pending_out. False when the session closed.
  bool flush(Direction& d);
  void finishIfDone(Direction& d);
  void updateInterest();
  /// Seals or opens `n` bytes of `in` into `out` (WorkerContext::kScratchSize bytes).
  bool transform(Direction& d, const uint8_t* in, size_t n, uint8_t* out, size_t* produced);
  bool transform2022(Direction& d, const uint8_t* in, size_t n, uint8_t* out, size_t* produced);

  const uint64_t id_;
  ConnectPhase connect_phase_ = ConnectPhase::None;
  bool enforce_policy_ = false;
  bool fast_open_ = false;
  const crypto::SocksAddress* connect_target_ = nullptr;
  dns::ResolveHandle resolve_;
  std::vector<dns::IpAddress> candidates_;
  size_t next_candidate_ = 0;
  bool relaying_ = false;
  bool closed_ = false;
  RelayUserPtr user_;
  UserTraffic* traffic_;  // the user's entry of the host's sample ("" without a user)
  uint64_t from_client_ = 0;
  uint64_t to_client_ = 0;
  uint64_t from_remote_ = 0;
  uint64_t to_remote_ = 0;
  bool in_batch_ = false;
  size_t client_read_limit_ = WorkerContext::kReadSize;  // of the queued handshake-phase read
  TimePoint last_active_;
  std::optional<Timer> rate_timer_;  // made at the first pause: most users have no rate
};

}  // namespace shadowrelay::relay
