// SPDX-License-Identifier: Apache-2.0
#include "relay/tcp/session_io_batch.h"

#include <algorithm>

#include "relay/context/worker_context.h"
#include "relay/tcp/session.h"

namespace shadowrelay::relay {

SessionIoBatch::SessionIoBatch(EventLoop& loop, bool io_uring)
    : loop_(loop), want_uring_(io_uring) {}

SessionIoBatch::~SessionIoBatch() {
  *alive_ = false;  // a run() deferred on the loop must not run after this
}

void SessionIoBatch::touch(TcpSession& session) {
  if (session.joinBatch()) touched_.push_back(&session);
}

void SessionIoBatch::queueRecv(TcpSession& session, uint8_t dir) {
  recv_ops_.push_back({&session, dir});
  touch(session);
  schedule();
}

void SessionIoBatch::queueSend(TcpSession& session, uint8_t dir) {
  send_ops_.push_back({&session, dir, nullptr, 0, true});
  touch(session);
  schedule();
}

void SessionIoBatch::schedule() {
  if (scheduled_) return;
  scheduled_ = true;
  // Runs after this iteration's callbacks, before its deferred deletions: every queued
  // session is still allocated (closed ones are skipped).
  loop_.defer([this, alive = alive_] {
    if (*alive) run();
  });
}

uint8_t* SessionIoBatch::poolBuffer(std::vector<std::unique_ptr<uint8_t[]>>& pool, size_t i) {
  while (pool.size() <= i) {
    pool.push_back(std::make_unique_for_overwrite<uint8_t[]>(WorkerContext::kScratchSize));
  }
  return pool[i].get();
}

void SessionIoBatch::run() {
  scheduled_ = false;
  if (!io_) io_ = std::make_unique<IoBatch>(want_uring_);  // on the loop thread
  // Swap with kept vectors (not fresh ones): no allocation per loop iteration.
  std::vector<RecvOp>& recvs = recv_running_;
  recvs.clear();
  recvs.swap(recv_ops_);
  const size_t chunk = io_->capacity();
  for (size_t first = 0; first < recvs.size(); first += chunk) {
    const size_t n = std::min(chunk, recvs.size() - first);
    have_.assign(n, 0);
    for (size_t k = 0; k < n; ++k) {
      const RecvOp& op = recvs[first + k];
      uint8_t* buf = poolBuffer(in_pool_, k);
      size_t want = 0;
      const int fd = op.session->takeRecv(op.dir, buf, &have_[k], &want);
      if (fd < 0) continue;
      io_->addRecv(fd, buf + have_[k], want, k);
    }
    for (const IoBatch::Completion& c : io_->run()) {
      const size_t k = static_cast<size_t>(c.token);
      const RecvOp& op = recvs[first + k];
      uint8_t* out = poolBuffer(out_pool_, k);
      size_t produced = 0;
      op.session->onRecvDone(op.dir, in_pool_[k].get(), have_[k], c.result, out, &produced);
      if (produced > 0) send_ops_.push_back({op.session, op.dir, out, produced, false});
    }
    runSends();  // before the next chunk reuses the output buffers
  }
  runSends();  // flushes queued by writable events
  std::vector<TcpSession*>& touched = touched_running_;
  touched.clear();
  touched.swap(touched_);
  for (TcpSession* session : touched) session->afterBatch();
}

void SessionIoBatch::runSends() {
  std::vector<SendOp>& sends = send_running_;
  sends.clear();
  sends.swap(send_ops_);
  const size_t chunk = io_->capacity();
  for (size_t first = 0; first < sends.size(); first += chunk) {
    const size_t n = std::min(chunk, sends.size() - first);
    for (size_t k = 0; k < n; ++k) {
      SendOp& op = sends[first + k];
      const int fd = op.session->takeSend(op.dir, op.from_pending, &op.data, &op.len);
      if (fd < 0) continue;
      io_->addSend(fd, op.data, op.len, first + k);
    }
    for (const IoBatch::Completion& c : io_->run()) {
      const SendOp& op = sends[static_cast<size_t>(c.token)];
      op.session->onSendDone(op.dir, op.data, op.len, op.from_pending, c.result);
    }
  }
}

}  // namespace shadowrelay::relay
