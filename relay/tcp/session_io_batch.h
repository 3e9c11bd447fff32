// SPDX-License-Identifier: Apache-2.0
#pragma once
// The relay phase's socket I/O of one loop: sessions queue a receive or a send from their
// events, and at the end of the loop iteration all of them run together (one io_uring submit,
// or plain recv/send: relay/net/io_batch.h), each result reported back to its session. Owns the
// buffers the receives land in and the transformed bytes leave from, reused every iteration.
// Loop-thread only.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "relay/event/event_loop.h"
#include "relay/net/io_batch.h"

namespace shadowrelay::relay {

class TcpSession;

class SessionIoBatch {
 public:
  /// `io_uring`: use it when the kernel has it (else plain syscalls).
  SessionIoBatch(EventLoop& loop, bool io_uring);
  ~SessionIoBatch();
  SessionIoBatch(const SessionIoBatch&) = delete;
  SessionIoBatch& operator=(const SessionIoBatch&) = delete;

  /// Reads direction `dir` of `session` at the end of this iteration. `session` must stay
  /// allocated until then (closed is fine: deferred deletion runs after the batch).
  void queueRecv(TcpSession& session, uint8_t dir);
  /// Writes the parked output of direction `dir` of `session` at the end of this iteration.
  void queueSend(TcpSession& session, uint8_t dir);

  bool usingIoUring() const { return io_ != nullptr && io_->usingUring(); }
  uint64_t syscallsForTest() const { return io_ ? io_->syscalls() : 0; }

 private:
  struct RecvOp {
    TcpSession* session;
    uint8_t dir;
  };
  struct SendOp {
    TcpSession* session;
    uint8_t dir;
    const uint8_t* data;  // filled from the session's parked output when from_pending
    size_t len;
    bool from_pending;
  };

  void touch(TcpSession& session);
  void schedule();
  void run();
  void runSends();
  uint8_t* poolBuffer(std::vector<std::unique_ptr<uint8_t[]>>& pool, size_t i);

  EventLoop& loop_;
  const bool want_uring_;
  std::unique_ptr<IoBatch> io_;  // made on the loop thread, at the first batch
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
  bool scheduled_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace shadowrelay::relay
