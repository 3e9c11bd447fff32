// SPDX-License-Identifier: Apache-2.0
#pragma once
// Batched socket I/O: many recv()/send() calls submitted with one system call.
//
// A system call's fixed cost dominates small relays (docs/PERFORMANCE.md, "Why the code is as it
// is"). The relay's loop still learns readiness from epoll; what it then reads and writes in one
// loop iteration goes through an IoBatch: with
// io_uring (liburing), all receives of the iteration are one io_uring_enter, all sends another.
// Where io_uring is unavailable (old kernel, seccomp, kernel.io_uring_disabled), the same API
// makes the plain calls one by one.
//
// Every operation is non-blocking (MSG_DONTWAIT): a socket with nothing to read, or no room to
// write, completes at once with -EAGAIN, never parks in the ring.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

struct io_uring;

namespace shadowrelay::relay {

class IoBatch {
 public:
  /// With io_uring when `use_uring` and the kernel allows it, else plain calls. Construct it on
  /// the thread that will use it (the ring is single-issuer).
  explicit IoBatch(bool use_uring = true, unsigned entries = 128);
  ~IoBatch();
  IoBatch(const IoBatch&) = delete;
  IoBatch& operator=(const IoBatch&) = delete;

  bool usingUring() const { return ring_ != nullptr; }
  /// Most operations one run() submits together.
  size_t capacity() const { return capacity_; }

  /// Queues an operation; `token` comes back with its result. The buffer must stay valid until
  /// run() returns. At most capacity() operations may be queued.
  void addRecv(int fd, void* buf, size_t len, uint64_t token);
  void addSend(int fd, const void* buf, size_t len, uint64_t token);
  size_t queued() const { return ops_.size(); }

  struct Completion {
    uint64_t token;
    long result;  // bytes, 0 for EOF on a receive, or -errno
  };
  /// Performs every queued operation and returns their results (any order). The returned
  /// reference stays valid until the next call.
  const std::vector<Completion>& run();

  /// Submissions (io_uring_enter or plain calls) made so far: for tests and statistics.
  uint64_t syscalls() const { return syscalls_; }

 private:
  struct Op {
    bool send;
    int fd;
    void* buf;
    size_t len;
    uint64_t token;
  };

  std::unique_ptr<io_uring> ring_;
  size_t capacity_;
  std::vector<Op> ops_;
  std::vector<Completion> done_;
  uint64_t syscalls_ = 0;
};

}  // namespace shadowrelay::relay
