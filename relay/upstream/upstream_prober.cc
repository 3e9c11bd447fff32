// SPDX-License-Identifier: Apache-2.0
#include "relay/upstream/upstream_prober.h"

#include <algorithm>
#include <cstring>

#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/upstream/upstream_balancer.h"

namespace shadowrelay::relay {

UpstreamProber::UpstreamProber(EventLoop& loop, UpstreamBalancer& balancer,
                               std::chrono::milliseconds interval,
                               std::chrono::milliseconds timeout)
    : loop_(loop),
      balancer_(balancer),
      interval_(interval),
      timeout_(std::min(timeout, interval)),
      probes_(balancer.size()),
      next_round_(loop, [this] { round(); }),
      deadline_(loop, [this] {
        for (size_t i = 0; i < probes_.size(); ++i) finish(i, false);
      }) {}

UpstreamProber::~UpstreamProber() {
  for (Probe& probe : probes_) {
    if (probe.watcher) probe.watcher->willCloseFd();
  }
}

void UpstreamProber::start() { round(); }

void UpstreamProber::round() {
  ++rounds_;
  for (size_t i = 0; i < probes_.size(); ++i) {
    finish(i, false);  // still open from the last round: it took longer than the timeout
    const std::optional<SocketAddress>& address = balancer_.server(i).resolved;
    if (!address) continue;  // not resolved at start: known only from its sessions
    Probe& probe = probes_[i];
    probe.started = loop_.readClock();
    const int fd = connectNonBlocking(*address, /*fast_open=*/false, /*no_delay=*/true);
    if (fd < 0) {
      SR_LOG(Debug, "probe of server %s: %s", balancer_.server(i).label, std::strerror(-fd));
      balancer_.onProbe(i, std::nullopt);
      continue;
    }
    probe.fd = Fd(fd);
    probe.watcher.emplace(loop_, fd, kWritable, [this, i](uint32_t events) { onEvent(i, events); });
  }
  deadline_.armAfter(timeout_);
  next_round_.armAfter(interval_);
}

void UpstreamProber::onEvent(size_t i, uint32_t events) {
  const int err = (events & kClosed) ? socketError(probes_[i].fd.get()) : 0;
  if (err != 0 || (events & kClosed)) {
    SR_LOG(Debug, "probe of server %s: %s", balancer_.server(i).label,
           err != 0 ? std::strerror(err) : "closed");
  }
  finish(i, err == 0 && !(events & kClosed));
}

void UpstreamProber::finish(size_t i, bool ok) {
  Probe& probe = probes_[i];
  if (!probe.fd.valid()) return;
  probe.watcher->willCloseFd();
  probe.watcher.reset();
  probe.fd.reset();
  if (ok) {
    balancer_.onProbe(i, loop_.readClock() - probe.started);
  } else {
    SR_LOG(Debug, "probe of server %s failed or timed out", balancer_.server(i).label);
    balancer_.onProbe(i, std::nullopt);
  }
}

}  // namespace shadowrelay::relay
