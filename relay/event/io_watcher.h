// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <functional>

#include "relay/event/event_types.h"

namespace shadowrelay::relay {

class EventLoop;

/// An fd, an interest mask and a callback on one loop (RAII: registered in the constructor,
/// removed from epoll in the destructor). Does not own or close the fd: destroy the watcher
/// before closing the fd. Owned by the session; never outlives the loop. Loop-thread only.
///
/// The callback receives IoEvents bits, masked by the current interest (kClosed always passes).
/// It may destroy this watcher or others: a watcher destroyed earlier in an epoll batch gets no
/// callback for the rest of that batch, even if a new watcher reuses its fd number.
/// Interest 0 removes the fd from epoll (so a hung-up fd cannot spin a level-triggered loop).
class IoWatcher {
 public:
  using Callback = std::function<void(uint32_t events)>;

  IoWatcher(EventLoop& loop, int fd, uint32_t interest, Callback cb);
  ~IoWatcher();
  IoWatcher(const IoWatcher&) = delete;
  IoWatcher& operator=(const IoWatcher&) = delete;

  /// kReadable | kWritable; other bits are ignored. One epoll_ctl when the mask changes.
  void setInterest(uint32_t interest);
  void enableRead(bool on);
  void enableWrite(bool on);
  /// The owner is about to destroy this watcher and then close the fd, which it never dup()ed:
  /// closing removes the fd from epoll, so the destructor skips its EPOLL_CTL_DEL (one syscall
  /// per socket saved on every connection close).
  void willCloseFd() { in_epoll_ = false; }
  uint32_t interest() const { return interest_; }
  int fd() const { return fd_; }
  /// errno of the last failed epoll_ctl (EPERM for regular files, ENOMEM, ENOSPC), 0 if none.
  int lastError() const { return last_error_; }

 private:
  friend class EventLoop;

  EventLoop& loop_;
  const int fd_;
  uint32_t interest_ = 0;
  uint32_t slot_ = 0;
  bool in_epoll_ = false;
  int last_error_ = 0;
  Callback cb_;
};

}  // namespace shadowrelay::relay
