// SPDX-License-Identifier: Apache-2.0
#pragma once
// The Shadowsocks servers of `local` and `tunnel` and their health: which server a new
// connection tries first and in which order it fails over, which servers are down, and what
// each has carried (for the metrics). One per process, shared by the workers and the prober.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "crypto/address.h"
#include "relay/context/relay_env.h"
#include "relay/net/endpoint.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay {

/// One server, fixed at start.
struct Upstream {
  std::string label;              // its name, else host:port (logs, metrics); never a secret
  Endpoint endpoint;              // as configured
  crypto::SocksAddress address;   // where TCP sessions connect (resolved by the worker)
  std::optional<SocketAddress> resolved;  // resolved at start: UDP and the probes
  Credentials credentials;        // its method and key
};

/// What the metrics show of one server.
struct UpstreamState {
  std::string label;
  bool up = true;
  std::optional<std::chrono::nanoseconds> latency;  // smoothed connect time; none measured yet
  uint64_t connect_failures = 0;
  uint64_t sessions = 0;
};

/// Health and choice. Thread-safe: a short mutex around a few words per server; up() is a
/// lock-free read for the UDP path.
///
/// Policy: the servers that are up, lowest latency first (a smoothed connect time from the
/// probes and the sessions); the first of a connection is picked at random among those about
/// as fast as the best (within kTieRatio and kTieSlack, or not measured yet), so that equal
/// servers share the load as Python's random choice does. A server is marked down by a failed
/// probe, or by kFailuresToMarkDown failed session connects in a row; only a successful probe
/// marks it up again. When every server is down, connections try them all anyway.
class UpstreamBalancer {
 public:
  static constexpr int kFailuresToMarkDown = 3;
  static constexpr double kTieRatio = 1.5;
  static constexpr std::chrono::milliseconds kTieSlack{2};
  static constexpr size_t kInlinePlan = 8;
  using Plan = absl::InlinedVector<size_t, kInlinePlan>;

  explicit UpstreamBalancer(std::vector<Upstream> servers);
  UpstreamBalancer(const UpstreamBalancer&) = delete;
  UpstreamBalancer& operator=(const UpstreamBalancer&) = delete;

  size_t size() const { return servers_.size(); }
  const Upstream& server(size_t i) const { return servers_[i]; }

  /// The servers a new connection tries, in order (indices); never empty. `seed`: any number
  /// that differs between connections (mixed here), for the random pick among equals.
  Plan plan(uint64_t seed) const;
  /// The server a new UDP association uses: plan(seed).front().
  size_t best(uint64_t seed) const { return plan(seed).front(); }
  bool up(size_t i) const { return up_[i].load(std::memory_order_relaxed); }

  /// A session reached server `i` after `latency`.
  void onConnected(size_t i, std::chrono::nanoseconds latency);
  /// A session (or a UDP association) could not reach server `i`.
  void onConnectFailed(size_t i);
  /// A probe of server `i`: its connect time, or nullopt when it failed.
  void onProbe(size_t i, std::optional<std::chrono::nanoseconds> latency);

  std::vector<UpstreamState> states() const;

 private:
  struct Health {
    int failures_in_row = 0;
    std::optional<std::chrono::nanoseconds> latency;
    uint64_t connect_failures = 0;
    uint64_t sessions = 0;
  };

  void measure(Health& health, std::chrono::nanoseconds latency)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void setUp(size_t i, bool up, const char* why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const std::vector<Upstream> servers_;
  std::unique_ptr<std::atomic<bool>[]> up_;  // written under mutex_, read without
  mutable absl::Mutex mutex_;
  std::vector<Health> health_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace shadowrelay::relay
