// SPDX-License-Identifier: Apache-2.0
#pragma once

namespace shadowrelay::relay {

/// Base for objects handed to EventLoop::deferredDelete(): freed after the current epoll batch
/// (or by the loop's destructor), on the loop thread.
class DeferredDeletable {
 public:
  virtual ~DeferredDeletable() = default;
};

}  // namespace shadowrelay::relay
