// SPDX-License-Identifier: Apache-2.0
#pragma once
// Bounds on connections that have not authenticated yet (issue 15 §4): such a connection costs
// a descriptor, a session and a handshake deadline of up to --handshake-timeout, and anyone can
// open it. Past the bounds a new connection is closed at accept, without a byte.

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay {

/// Unauthenticated connections per source network — an IPv4 /32 (IPv4-mapped IPv6 included) or
/// an IPv6 /64, the smallest block one client commonly holds — across all workers. Thread-safe:
/// the counts are striped over a few mutexes (one lock per accept and per authentication).
class SourceLimiter {
 public:
  /// `per_source` > 0.
  explicit SourceLimiter(uint32_t per_source) : per_source_(per_source) {}
  SourceLimiter(const SourceLimiter&) = delete;
  SourceLimiter& operator=(const SourceLimiter&) = delete;

  /// The source network of a peer: {family, IPv4 address or the IPv6 /64 prefix}; {0, 0} for
  /// other families.
  using Key = std::pair<int, uint64_t>;
  static Key keyOf(const SocketAddress& peer);

  /// Counts one more connection of the source `key`; false (nothing counted) if it has
  /// per_source already. Other families ({0, 0}) are not limited (always true).
  bool tryAcquire(const Key& key);
  /// Undoes one tryAcquire() that returned true.
  void release(const Key& key);
  /// Connections counted for the source of `peer` now.
  uint32_t countForTest(const SocketAddress& peer);

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<Key, uint32_t> counts ABSL_GUARDED_BY(mu);
  };
  Shard& shardOf(const Key& key);

  const uint32_t per_source_;
  std::array<Shard, kShards> shards_;
};

class PreauthGate;

/// One connection's place among the unauthenticated ones; given back by release() (on
/// authentication or close) or on destruction. Move-only. Loop-thread only, like its gate.
class PreauthSlot {
 public:
  PreauthSlot() = default;
  PreauthSlot(PreauthSlot&& other) noexcept
      : gate_(std::exchange(other.gate_, nullptr)), source_(other.source_) {}
  PreauthSlot& operator=(PreauthSlot&& other) noexcept;
  PreauthSlot(const PreauthSlot&) = delete;
  PreauthSlot& operator=(const PreauthSlot&) = delete;
  ~PreauthSlot() { release(); }

  bool held() const { return gate_ != nullptr; }
  void release();

 private:
  friend class PreauthGate;
  PreauthSlot(PreauthGate* gate, const SourceLimiter::Key& source)
      : gate_(gate), source_(source) {}

  PreauthGate* gate_ = nullptr;
  SourceLimiter::Key source_;
};

/// One worker's admission of new connections: at most `per_worker` of them unauthenticated on
/// this worker, and what `sources` allows per source (null: no per-source bound). Loop-thread
/// only; must outlive its slots.
class PreauthGate {
 public:
  enum class Verdict { Admitted, SourceFull, WorkerFull };

  /// `per_worker` 0: no per-worker bound.
  PreauthGate(uint32_t per_worker, SourceLimiter* sources)
      : per_worker_(per_worker), sources_(sources) {}

  /// A slot for a connection from `peer`, or none and why not.
  PreauthSlot admit(const SocketAddress& peer, Verdict* verdict);
  /// Unauthenticated connections holding a slot of this gate now.
  uint32_t held() const { return held_; }

 private:
  friend class PreauthSlot;
  void giveBack(const SourceLimiter::Key& source);

  const uint32_t per_worker_;
  SourceLimiter* const sources_;
  uint32_t held_ = 0;
};

}  // namespace shadowrelay::relay
