// SPDX-License-Identifier: Apache-2.0
#pragma once
// Probes the servers of an UpstreamBalancer on one loop: at start and then every interval, a
// non-blocking TCP connect to each server's address resolved at start. A connect that succeeds
// within the timeout reports its time (the latency the balancer orders by); one that is
// refused, fails or times out marks the server down. Loop-thread only; owns its sockets.

#include <chrono>
#include <cstddef>
#include <optional>
#include <vector>

#include "relay/event/event_types.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay {

class EventLoop;
class UpstreamBalancer;

class UpstreamProber {
 public:
  /// `timeout`: per probe, at most `interval`.
  UpstreamProber(EventLoop& loop, UpstreamBalancer& balancer, std::chrono::milliseconds interval,
                 std::chrono::milliseconds timeout);
  ~UpstreamProber();
  UpstreamProber(const UpstreamProber&) = delete;
  UpstreamProber& operator=(const UpstreamProber&) = delete;

  /// Probes every server now, then every interval.
  void start();
  /// Rounds started so far.
  size_t rounds() const { return rounds_; }

 private:
  struct Probe {
    Fd fd;
    std::optional<IoWatcher> watcher;
    TimePoint started;
  };

  void round();
  void onEvent(size_t i, uint32_t events);
  /// Ends server i's probe (if one is open) with `ok`, reporting it to the balancer.
  void finish(size_t i, bool ok);

  EventLoop& loop_;
  UpstreamBalancer& balancer_;
  const std::chrono::milliseconds interval_;
  const std::chrono::milliseconds timeout_;
  std::vector<Probe> probes_;  // index = server
  Timer next_round_;
  Timer deadline_;
  size_t rounds_ = 0;
};

}  // namespace shadowrelay::relay
