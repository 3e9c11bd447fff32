// SPDX-License-Identifier: Apache-2.0
#include "relay/event/io_watcher.h"

#include <utility>

#include "relay/event/event_loop.h"

namespace shadowrelay::relay {

namespace {
constexpr uint32_t kInterestMask = kReadable | kWritable;
}  // namespace

IoWatcher::IoWatcher(EventLoop& loop, int fd, uint32_t interest, Callback cb)
    : loop_(loop), fd_(fd), interest_(interest & kInterestMask), cb_(std::move(cb)) {
  loop_.addWatcher(*this);
}

IoWatcher::~IoWatcher() { loop_.removeWatcher(*this); }

void IoWatcher::setInterest(uint32_t interest) {
  interest &= kInterestMask;
  if (interest != interest_) {
    loop_.updateWatcher(*this, interest);
  }
}

void IoWatcher::enableRead(bool on) {
  setInterest(on ? (interest_ | kReadable) : (interest_ & ~uint32_t{kReadable}));
}

void IoWatcher::enableWrite(bool on) {
  setInterest(on ? (interest_ | kWritable) : (interest_ & ~uint32_t{kWritable}));
}

}  // namespace shadowrelay::relay
