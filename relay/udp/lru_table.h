// SPDX-License-Identifier: Apache-2.0
#pragma once
// A bounded map with least-recently-used eviction (dns/lru.h) and per-entry idle expiry:
// the shape of the UDP relay's association (NAT) tables, where an unbounded table is how other
// relays run out of file descriptors. Values own their resources (an association owns its
// socket), so evicting or expiring an entry releases them. Single-threaded (one table per worker
// loop).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/hash/hash.h"
#include "dns/lru.h"

namespace shadowrelay::relay {

template <typename Key, typename Value, typename Hash = absl::Hash<Key>>
class LruTable {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  struct Entry {
    Key key;
    Value value;
    TimePoint last_used;
    Duration idle_timeout;
  };

  /// `capacity` ≥ 1 entries at most; inserting into a full table evicts the least recently
  /// used entry first.
  explicit LruTable(size_t capacity) : lru_(capacity) {}

  size_t size() const { return lru_.size(); }
  size_t capacity() const { return lru_.capacity(); }
  uint64_t evictions() const { return lru_.evictions(); }
  uint64_t expirations() const { return expirations_; }

  /// The entry for `key`, marked as used at `now`; null if absent.
  Entry* touch(const Key& key, TimePoint now) {
    Entry* entry = lru_.find(key);
    if (entry != nullptr) entry->last_used = now;
    return entry;
  }

  /// The entry for `key` without changing its recency; null if absent.
  Entry* peek(const Key& key) { return lru_.peek(key); }

  /// Inserts (or replaces) `key`, most recently used, idle for at most `idle_timeout`.
  Entry& insert(Key key, Value value, TimePoint now, Duration idle_timeout) {
    return lru_.insert(Entry{std::move(key), std::move(value), now, idle_timeout});
  }

  bool erase(const Key& key) { return lru_.erase(key); }

  /// Removes entries idle longer than their timeout, oldest first, looking at most at
  /// `max_checks` entries. Entries more recent than `now - shortest_timeout` are never expired,
  /// so the walk stops there. Returns how many expired.
  size_t expire(TimePoint now, Duration shortest_timeout, size_t max_checks = 1024) {
    using Sweep = typename Order::Sweep;
    const size_t removed = lru_.sweepOldest(max_checks, [&](const Entry& e) {
      if (now - e.last_used < shortest_timeout) return Sweep::Stop;
      return now - e.last_used >= e.idle_timeout ? Sweep::Erase : Sweep::Keep;
    });
    expirations_ += removed;
    return removed;
  }

  /// Least recently used first.
  template <typename Fn>
  void forEachOldestFirst(Fn fn) const {
    lru_.forEachOldestFirst(fn);
  }

 private:
  using Order = dns::Lru<&Entry::key, Hash>;
  Order lru_;
  uint64_t expirations_ = 0;
};

}  // namespace shadowrelay::relay
