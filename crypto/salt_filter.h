// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace shadowrelay::crypto {

/// Replay filter for SIP004 salts (PROTOCOL.md §5): a ping-pong Bloom filter. Two filters of
/// capacity/2 entries each; inserts go to the current one, and when it holds capacity/2 the other
/// is cleared and becomes current. So at least the last capacity/2 and at most the last
/// `capacity` salts are remembered, with a false-positive rate of at most 2 * fp_rate (both
/// halves are checked).
///
/// Memory: 2 * ceil(-(capacity/2) * ln(fp_rate) / ln(2)^2) bits; the default (1e6 salts,
/// 1e-9) is about 5.4 MiB. Thread-safe: the one structure shared by all loops, split into
/// `shards` independently locked filters chosen by the salt's first bytes (salts are random).
class SaltFilter {
 public:
  static constexpr size_t kDefaultCapacity = 1'000'000;
  static constexpr double kDefaultFpRate = 1e-9;

  /// The two 64-bit hashes of a salt that place its bits (double hashing).
  struct Hashes {
    uint64_t h1;
    uint64_t h2;
  };
  using HashFunction = Hashes (*)(std::span<const uint8_t> salt);

  /// Hashes salts with a key drawn at random once per process, so that nobody can precompute
  /// salts that collide.
  explicit SaltFilter(size_t capacity = kDefaultCapacity, double fp_rate = kDefaultFpRate,
                      size_t shards = 16);
  /// With `hash` instead: tests give a fixed one, so that which salts collide, and so the
  /// false positives they count, are the same every run.
  SaltFilter(size_t capacity, double fp_rate, size_t shards, HashFunction hash);
  ~SaltFilter();

  /// True if `salt` may have been seen (then it is not inserted again).
  bool contains(std::span<const uint8_t> salt) const;
  void insert(std::span<const uint8_t> salt);
  /// Atomically: true and insert when new; false when (probably) seen before.
  bool checkAndInsert(std::span<const uint8_t> salt);

  size_t memoryBytes() const;
  size_t hashCount() const { return hashes_; }

 private:
  struct Shard;
  Hashes hashPair(std::span<const uint8_t> salt) const;
  Shard& shardFor(std::span<const uint8_t> salt) const;

  HashFunction hash_;
  size_t hashes_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace shadowrelay::crypto
