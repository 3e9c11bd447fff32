// SPDX-License-Identifier: Apache-2.0
#pragma once
// A bounded collection kept in least-recently-used order, with lookup by key: the one LRU of the
// project (the DNS cache's shards, the UDP association tables). Elements are stored once, in
// list nodes that never move, so references to them stay valid until they leave; each key is
// stored only in its element. Not thread-safe: a shared instance needs its owner's lock.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <list>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"

namespace shadowrelay::dns {

template <auto KeyMember>
struct LruKeyMember;
template <typename T, typename K, K T::*KeyMember>
struct LruKeyMember<KeyMember> {
  using Element = T;
  using Key = K;
};

/// Elements of type T, each identified by its member `KeyMember` (e.g. &Entry::key), at most
/// capacity() of them. `Hash` and `Eq` apply to keys; lookups take any type K they accept along
/// with the key type (absl::Hash<absl::string_view> and std::equal_to<> let a std::string key be
/// found by a string_view). An element's key must not change while it is stored.
template <auto KeyMember, typename Hash = absl::Hash<typename LruKeyMember<KeyMember>::Key>,
          typename Eq = std::equal_to<>>
class Lru {
 public:
  using Element = typename LruKeyMember<KeyMember>::Element;
  using Key = typename LruKeyMember<KeyMember>::Key;

  /// What sweepOldest()'s visitor decides for an element.
  enum class Sweep { Keep, Erase, Stop };

  /// At most `capacity` elements; 0 counts as 1.
  explicit Lru(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  size_t size() const { return order_.size(); }
  bool empty() const { return order_.empty(); }
  size_t capacity() const { return capacity_; }
  /// Elements insert() has evicted so far.
  uint64_t evictions() const { return evictions_; }

  /// The element of `key`, which becomes the most recently used; null if none.
  template <typename K>
  Element* find(const K& key) {
    const auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, *it);
    return &**it;
  }

  /// The element of `key` without changing the order; null if none.
  template <typename K>
  Element* peek(const K& key) {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &**it;
  }
  template <typename K>
  const Element* peek(const K& key) const {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &**it;
  }

  /// Stores `element` as the most recently used. It replaces the element with the same key if
  /// there is one; otherwise, when full, the least recently used element is evicted first.
  Element& insert(Element element) {
    if (const auto it = index_.find(element.*KeyMember); it != index_.end()) {
      **it = std::move(element);
      order_.splice(order_.begin(), order_, *it);
      return order_.front();
    }
    while (order_.size() >= capacity_) {
      index_.erase(std::prev(order_.end()));
      order_.pop_back();
      ++evictions_;
    }
    order_.push_front(std::move(element));
    index_.insert(order_.begin());
    return order_.front();
  }

  /// Removes the element of `key`; false if there was none.
  template <typename K>
  bool erase(const K& key) {
    const auto it = index_.find(key);
    if (it == index_.end()) return false;
    const NodeIt node = *it;
    index_.erase(it);
    order_.erase(node);
    return true;
  }

  void clear() {
    index_.clear();
    order_.clear();
  }

  /// Visits elements from the least recently used on, at most `max_visits` of them, removing
  /// those for which `visit(Element&)` returns Erase and stopping at the first Stop. Returns how
  /// many were removed. `visit` must not touch this Lru.
  template <typename Visit>
  size_t sweepOldest(size_t max_visits, Visit&& visit) {
    size_t removed = 0;
    auto it = order_.end();
    for (size_t visited = 0; visited < max_visits && it != order_.begin(); ++visited) {
      --it;
      const Sweep decision = visit(*it);
      if (decision == Sweep::Stop) break;
      if (decision == Sweep::Erase) {
        index_.erase(it);
        it = order_.erase(it);
        ++removed;
      }
    }
    return removed;
  }

  /// Calls fn(const Element&) from the least recently used to the most recently used.
  template <typename Fn>
  void forEachOldestFirst(Fn&& fn) const {
    for (auto it = order_.rbegin(); it != order_.rend(); ++it) fn(*it);
  }

 private:
  using Order = std::list<Element>;
  using NodeIt = typename Order::iterator;

  // The index holds list iterators and hashes and compares them by their element's key, so
  // each key is stored once, in its element.
  struct NodeHash {
    using is_transparent = void;
    size_t operator()(NodeIt it) const { return Hash{}((*it).*KeyMember); }
    template <typename K>
    size_t operator()(const K& key) const {
      return Hash{}(key);
    }
  };
  struct NodeEq {
    using is_transparent = void;
    bool operator()(NodeIt a, NodeIt b) const { return a == b; }
    template <typename K>
    bool operator()(NodeIt a, const K& key) const {
      return Eq{}((*a).*KeyMember, key);
    }
    template <typename K>
    bool operator()(const K& key, NodeIt b) const {
      return Eq{}(key, (*b).*KeyMember);
    }
  };

  const size_t capacity_;
  Order order_;  // most recently used first
  absl::flat_hash_set<NodeIt, NodeHash, NodeEq> index_;
  uint64_t evictions_ = 0;
};

}  // namespace shadowrelay::dns
