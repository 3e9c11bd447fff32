// SPDX-License-Identifier: Apache-2.0
#include "relay/net/io_batch.h"

#include <liburing.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace shadowrelay::relay {

IoBatch::IoBatch(bool use_uring, unsigned entries) : capacity_(entries) {
  ops_.reserve(entries);
  done_.reserve(entries);
  if (!use_uring) return;
  auto ring = std::make_unique<io_uring>();
  // COOP_TASKRUN: completions never interrupt the process with a signal-like notification (we
  // always wait for them ourselves); SINGLE_ISSUER: only the creating thread submits. Older
  // kernels refuse the flags: then plain setup.
  if (io_uring_queue_init(entries, ring.get(),
                          IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER) == 0 ||
      io_uring_queue_init(entries, ring.get(), 0) == 0) {
    ring_ = std::move(ring);
  }
}

IoBatch::~IoBatch() {
  if (ring_) io_uring_queue_exit(ring_.get());
}

void IoBatch::addRecv(int fd, void* buf, size_t len, uint64_t token) {
  ops_.push_back({false, fd, buf, len, token});
}

void IoBatch::addSend(int fd, const void* buf, size_t len, uint64_t token) {
  ops_.push_back({true, fd, const_cast<void*>(buf), len, token});
}

const std::vector<IoBatch::Completion>& IoBatch::run() {
  done_.clear();
  if (ops_.empty()) return done_;
  if (!ring_ || ops_.size() == 1) {
    // One operation gains nothing from the ring: a plain call is one syscall too.
    for (const Op& op : ops_) {
      ssize_t r;
      do {
        r = op.send ? ::send(op.fd, op.buf, op.len, MSG_DONTWAIT | MSG_NOSIGNAL)
                    : ::recv(op.fd, op.buf, op.len, MSG_DONTWAIT);
      } while (r < 0 && errno == EINTR);
      ++syscalls_;
      done_.push_back({op.token, r < 0 ? -static_cast<long>(errno) : static_cast<long>(r)});
    }
    ops_.clear();
    return done_;
  }
  for (const Op& op : ops_) {
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    if (sqe == nullptr) {  // more than `entries` queued: hand the kernel what is there first
      io_uring_submit(ring_.get());
      ++syscalls_;
      sqe = io_uring_get_sqe(ring_.get());
    }
    if (op.send) {
      io_uring_prep_send(sqe, op.fd, op.buf, op.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
      io_uring_prep_recv(sqe, op.fd, op.buf, op.len, MSG_DONTWAIT);
    }
    io_uring_sqe_set_data64(sqe, op.token);
  }
  const unsigned want = static_cast<unsigned>(ops_.size());
  unsigned got = 0;
  int rc = io_uring_submit_and_wait(ring_.get(), want);
  ++syscalls_;
  while (got < want) {
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) break;
    io_uring_cqe* cqe = nullptr;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      done_.push_back({io_uring_cqe_get_data64(cqe), static_cast<long>(cqe->res)});
      ++seen;
    }
    io_uring_cq_advance(ring_.get(), seen);
    got += seen;
    if (got < want) {
      rc = io_uring_wait_cqe_nr(ring_.get(), &cqe, want - got);
      ++syscalls_;
    }
  }
  if (got < want) {
    // The ring failed (not seen in practice). Its late completions must not be mistaken for a
    // later batch's: drop the ring, make plain calls from now on, and fail what is unaccounted.
    io_uring_queue_exit(ring_.get());
    ring_.reset();
    std::vector<uint64_t> seen_tokens;
    seen_tokens.reserve(done_.size());
    for (const Completion& c : done_) seen_tokens.push_back(c.token);
    std::sort(seen_tokens.begin(), seen_tokens.end());
    for (const Op& op : ops_) {
      if (!std::binary_search(seen_tokens.begin(), seen_tokens.end(), op.token)) {
        done_.push_back({op.token, -static_cast<long>(EIO)});
      }
    }
  }
  ops_.clear();
  return done_;
}

}  // namespace shadowrelay::relay
