// SPDX-License-Identifier: Apache-2.0
#pragma once
// A bounded map with least-recently-used eviction and per-entry idle expiry: the shape of the
// UDP relay's association (NAT) tables, where an unbounded table is how other relays run out of
// file descriptors. Values own their resources (an association owns its socket), so evicting
// or expiring an entry releases them. Single-threaded (one table per worker loop).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

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
  explicit LruTable(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  size_t size() const { return index_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t evictions() const { return evictions_; }
  uint64_t expirations() const { return expirations_; }

  /// The entry for `key`, marked as used at `now`; null if absent.
  Entry* touch(const Key& key, TimePoint now) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    it->second->last_used = now;
    return &*it->second;
  }

  /// The entry for `key` without changing its recency; null if absent.
  Entry* peek(const Key& key) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &*it->second;
  }

  /// Inserts (or replaces) `key`, most recently used, idle for at most `idle_timeout`.
  Entry& insert(Key key, Value value, TimePoint now, Duration idle_timeout) {
    erase(key);
    if (index_.size() >= capacity_) {
      index_.erase(order_.back().key);
      order_.pop_back();
      ++evictions_;
    }
    order_.push_front(Entry{std::move(key), std::move(value), now, idle_timeout});
    index_.emplace(order_.front().key, order_.begin());
    return order_.front();
  }

  bool erase(const Key& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    order_.erase(it->second);
    index_.erase(it);
    return true;
  }

  /// Removes entries idle longer than their timeout, oldest first, looking at most at
  /// `max_checks` entries. Entries more recent than `now - shortest_timeout` are never expired,
  /// so the walk stops there. Returns how many expired.
  size_t expire(TimePoint now, Duration shortest_timeout, size_t max_checks = 1024) {
    size_t removed = 0;
    auto it = order_.end();
    for (size_t checked = 0; checked < max_checks && it != order_.begin(); ++checked) {
      --it;
      if (now - it->last_used < shortest_timeout) break;
      if (now - it->last_used >= it->idle_timeout) {
        index_.erase(it->key);
        it = order_.erase(it);
        ++removed;
      }
    }
    expirations_ += removed;
    return removed;
  }

  /// Least recently used first.
  template <typename Fn>
  void forEachOldestFirst(Fn fn) const {
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) fn(*it);
  }

 private:
  using Order = std::list<Entry>;
  const size_t capacity_;
  Order order_;  // most recently used at the front
  absl::flat_hash_map<Key, typename Order::iterator, Hash> index_;
  uint64_t evictions_ = 0;
  uint64_t expirations_ = 0;
};

}  // namespace shadowrelay::relay
