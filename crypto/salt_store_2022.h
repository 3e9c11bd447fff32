// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "crypto/method.h"

namespace shadowrelay::crypto {

/// The replay store of Shadowsocks 2022 TCP request salts (PROTOCOL.md §2.4): an exact set (no
/// false positives; the SIP004 Bloom filter must not be used for 2022) that remembers every
/// accepted salt for at least kRetentionSeconds = 60 s (2 x the ±30 s timestamp window: a
/// request replayed later than that fails the timestamp check instead).
///
/// Time-bucketed: a salt goes into the bucket of its insertion time (kBucketSeconds wide); a
/// bucket is dropped whole once it is older than the retention, so a salt is kept 60 to 70 s.
/// Time is the caller's clock in Unix seconds (the loop's wall clock); a clock that steps back
/// keeps inserting into the newest bucket, so nothing is forgotten early.
///
/// Memory cap: at most `max_entries` salts (default 500,000: about 25 MiB with the set's
/// overhead). A salt stays 60 to 70 s, so that holds about 7,100 new connections a second,
/// sustained (500,000 / 70 s); beyond that rate some connections near the end of each bucket
/// are refused as below. At the cap a new salt is
/// NOT inserted and checkAndInsert() answers Full: the server refuses that connection like a
/// replay (evicting a live salt instead would reopen a replay window). Room comes back as the
/// oldest bucket expires.
///
/// Thread-safe: one store shared by all workers, behind one mutex (one check per accepted
/// 2022 connection, after its header authenticated: only holders of the key can insert).
class SaltStore2022 {
 public:
  static constexpr uint64_t kRetentionSeconds = 60;
  static constexpr uint64_t kBucketSeconds = 10;
  static constexpr size_t kDefaultMaxEntries = 500'000;

  enum class Result {
    Fresh,     // not seen in the retention window; inserted
    Replayed,  // seen before: refuse the connection
    Full,      // new, but the store is at max_entries: not inserted; refuse the connection
  };

  explicit SaltStore2022(size_t max_entries = kDefaultMaxEntries);

  /// Atomically: whether `salt` (at most kMaxSaltSize bytes) was seen within the retention
  /// window, inserting it when new and there is room. `now`: Unix seconds.
  Result checkAndInsert(std::span<const uint8_t> salt, uint64_t now);

  /// Salts held (expired buckets are dropped at the next checkAndInsert()).
  size_t size() const;
  size_t maxEntries() const { return max_entries_; }

 private:
  // Buckets that can hold live salts: the retention plus the current, partial bucket.
  static constexpr size_t kBuckets = kRetentionSeconds / kBucketSeconds + 1;
  // The salt's bytes, zero-padded, with its length last (salts of several sizes never clash).
  using Key = std::array<uint8_t, kMaxSaltSize + 1>;
  struct Bucket {
    uint64_t index = 0;  // Unix seconds / kBucketSeconds
    absl::flat_hash_set<Key> salts;
  };

  void expireLocked(uint64_t current) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_entries_;
  mutable absl::Mutex mu_;
  std::array<Bucket, kBuckets> buckets_ ABSL_GUARDED_BY(mu_);
  uint64_t current_ ABSL_GUARDED_BY(mu_) = 0;  // newest bucket index seen
  size_t size_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shadowrelay::crypto
