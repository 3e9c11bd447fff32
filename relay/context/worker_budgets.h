// SPDX-License-Identifier: Apache-2.0
#pragma once
// What one worker may spend on traffic that has not proven anything yet, or that waits in user
// space (issue 15 §1, §5):
//
// - Trial decryption of UDP datagrams from unknown sources (a multi-user AEAD-2017 port tries
//   the port's users' keys until one opens; each trial opens the whole datagram). Failed trials
//   are paid from two token buckets, one per worker and one per source (IPv4 /32, IPv6 /64), so
//   a sender without a key costs a bounded share of a core and one source cannot spend the
//   worker's whole budget.
// - Datagrams held in memory: waiting on DNS (DatagramRouter) and queued in UDP-over-TCP
//   streams (UotChannel), bounded in bytes for the whole worker, not only in count.
//
// Loop-thread only, like the worker that owns it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay {

/// `rate` tokens a second, at most `burst` saved; starts full.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(double rate, double burst, Clock::time_point now)
      : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}

  /// Whole tokens there now.
  uint64_t available(Clock::time_point now) {
    refill(now);
    return static_cast<uint64_t>(tokens_);
  }
  /// Takes `n` tokens (never below zero).
  void take(uint64_t n, Clock::time_point now) {
    refill(now);
    tokens_ = tokens_ > static_cast<double>(n) ? tokens_ - static_cast<double>(n) : 0;
  }

 private:
  void refill(Clock::time_point now);

  double rate_;
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

/// Bytes of datagrams that a worker holds at most; each holder takes what it keeps and gives it
/// back when it lets go.
class ByteBudget {
 public:
  explicit ByteBudget(size_t limit) : limit_(limit) {}
  ByteBudget(const ByteBudget&) = delete;
  ByteBudget& operator=(const ByteBudget&) = delete;

  /// Takes `n` bytes; false (nothing taken) when that would pass the limit.
  bool take(size_t n) {
    if (n > limit_ - used_) return false;
    used_ += n;
    return true;
  }
  void give(size_t n) { used_ -= n < used_ ? n : used_; }
  size_t used() const { return used_; }
  size_t limit() const { return limit_; }

 private:
  const size_t limit_;
  size_t used_ = 0;
};

/// Bytes taken from a ByteBudget, given back when destroyed (move-only).
class BudgetHold {
 public:
  BudgetHold() = default;
  BudgetHold(ByteBudget* budget, size_t bytes) : budget_(budget), bytes_(bytes) {}
  BudgetHold(BudgetHold&& other) noexcept
      : budget_(other.budget_), bytes_(other.bytes_) {
    other.budget_ = nullptr;
  }
  BudgetHold& operator=(BudgetHold&& other) noexcept;
  ~BudgetHold() { reset(); }
  void reset();

 private:
  ByteBudget* budget_ = nullptr;
  size_t bytes_ = 0;
};

/// The limits of one worker (RelayEnv's config: --udp-trial-budget,
/// --udp-source-trial-budget, --udp-queue-bytes).
struct BudgetOptions {
  double trials_per_second = 4096;         // failed trials, the whole worker
  double source_trials_per_second = 1024;  // failed trials, one source
  size_t queue_bytes = 16 << 20;           // datagrams waiting on DNS or in UoT queues
};

class WorkerBudgets {
 public:
  using Clock = std::chrono::steady_clock;
  /// Sources whose buckets are remembered; the least recently seen is forgotten beyond this.
  static constexpr size_t kMaxSources = 4096;

  explicit WorkerBudgets(const BudgetOptions& options, Clock::time_point now = Clock::now());
  ~WorkerBudgets();
  WorkerBudgets(const WorkerBudgets&) = delete;
  WorkerBudgets& operator=(const WorkerBudgets&) = delete;

  /// The trial state of one source: its bucket, and where its next trials start in its port's
  /// user order (a port with more users than one datagram may try is walked a window at a
  /// time).
  struct Source {
    TokenBucket bucket;
    size_t next_trial = 0;
  };
  /// The key of `address`'s source: its IPv4 address, or its IPv6 /64.
  static std::string sourceKey(const SocketAddress& address);
  /// The state of `source` (made on first sight); valid until the next call.
  Source& source(const std::string& source, Clock::time_point now);
  /// Failed trials `source` may still spend now: the smaller of its bucket and the worker's.
  uint64_t trialsAllowed(Source& source, Clock::time_point now);
  /// Pays `failed` trials from both buckets.
  void chargeTrials(Source& source, uint64_t failed, Clock::time_point now);

  ByteBudget& queueBytes() { return queue_bytes_; }

 private:
  struct Sources;

  const BudgetOptions options_;
  TokenBucket worker_trials_;
  std::unique_ptr<Sources> sources_;
  ByteBudget queue_bytes_;
};

}  // namespace shadowrelay::relay
