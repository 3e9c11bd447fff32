// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace shadowrelay::crypto {

/// Replay filter for SIP004 salts (PROTOCOL.md §5): a ping-pong Bloom filter, split into
/// `shards` independently locked parts chosen by the salt's first bytes (salts are random) so
/// that the loops rarely wait for each other.
///
/// Window. Salts are counted over the whole filter: every capacity/2 inserts begin a new epoch,
/// and each shard keeps two Bloom filters, its current epoch's and the one before. A shard
/// clears its older filter when its first salt of a new epoch arrives. So every salt is
/// remembered for at least the next capacity/2 salts inserted anywhere in the filter, and
/// forgotten after at most about `capacity` (guaranteedWindow(); the shards do not shorten it).
/// Each shard filter is sized for its expected share of an epoch plus six standard deviations,
/// so the false-positive rate stays at most 2 * fp_rate (both halves are checked).
///
/// Memory: about 2 * ceil(-(capacity/2) * ln(fp_rate) / ln(2)^2) bits plus a few percent; the
/// default (1e6 salts, 1e-9) is about 5.6 MiB. Thread-safe.
///
/// Persistence: snapshot() and restore() carry the filter, its hash key and its epoch across a
/// restart, so a server that restarts does not accept what it saw before (--state-dir).
class SaltFilter {
 public:
  static constexpr size_t kDefaultCapacity = 1'000'000;
  static constexpr double kDefaultFpRate = 1e-9;
  static constexpr size_t kDefaultShards = 16;

  /// The two 64-bit hashes of a salt that place its bits (double hashing).
  struct Hashes {
    uint64_t h1;
    uint64_t h2;
  };
  using HashFunction = Hashes (*)(std::span<const uint8_t> salt);

  /// Hashes salts with BLAKE3 keyed by a key drawn at random for this filter, so that nobody
  /// can precompute salts that collide (and so that a restored filter hashes as before).
  explicit SaltFilter(size_t capacity = kDefaultCapacity, double fp_rate = kDefaultFpRate,
                      size_t shards = kDefaultShards);
  /// With `hash` instead: tests give a fixed one, so that which salts collide, and so the
  /// false positives they count, are the same every run.
  SaltFilter(size_t capacity, double fp_rate, size_t shards, HashFunction hash);
  ~SaltFilter();
  SaltFilter(const SaltFilter&) = delete;
  SaltFilter& operator=(const SaltFilter&) = delete;

  /// True if `salt` may have been seen (then it is not inserted again).
  bool contains(std::span<const uint8_t> salt) const;
  void insert(std::span<const uint8_t> salt);
  /// Atomically: true and insert when new; false when (probably) seen before.
  bool checkAndInsert(std::span<const uint8_t> salt);

  size_t memoryBytes() const;
  size_t hashCount() const { return hashes_; }
  /// A salt is remembered for at least this many later inserts (capacity/2).
  uint64_t guaranteedWindow() const { return epoch_size_; }
  /// Salts inserted since the filter was made (those before a restore included).
  uint64_t insertCount() const { return inserts_.load(std::memory_order_relaxed); }

  /// The whole filter as bytes: parameters, hash key, epoch and bits, with a BLAKE3 checksum.
  /// Consistent per shard (each is copied under its lock); inserts may go on meanwhile.
  std::string snapshot() const;
  /// A filter made from snapshot() bytes, hashing as the snapshotted filter did (`hash`: the
  /// test hash function the snapshotted filter used, else null). Errors: not a snapshot,
  /// truncated, checksum mismatch, or parameters this build sizes differently.
  static absl::StatusOr<std::unique_ptr<SaltFilter>> restore(absl::string_view bytes,
                                                             HashFunction hash = nullptr);

 private:
  struct Shard;
  using Key = std::array<uint8_t, 32>;
  Hashes hashPair(std::span<const uint8_t> salt) const;
  Shard& shardFor(std::span<const uint8_t> salt) const;
  void add(Shard& shard, const Hashes& h);

  size_t capacity_;
  double fp_rate_;
  HashFunction hash_;  // null: keyed with key_
  Key key_{};
  size_t hashes_;
  uint64_t epoch_size_;  // inserts per epoch: capacity/2
  std::atomic<uint64_t> inserts_{0};
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace shadowrelay::crypto
