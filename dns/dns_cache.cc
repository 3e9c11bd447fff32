// SPDX-License-Identifier: Apache-2.0
#include "dns/dns_cache.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "dns/lru.h"

namespace shadowrelay::dns {

class DnsCache::Shard {
 public:
  explicit Shard(size_t capacity) : capacity_(capacity), lru_(capacity) {}

  std::optional<Entry> find(absl::string_view name, Clock::time_point now) {
    absl::MutexLock lock(&mutex_);
    const Node* node = lru_.find(name);
    if (node == nullptr) {
      return std::nullopt;
    }
    if (node->entry.expires_at <= now) {
      lru_.erase(name);
      return std::nullopt;
    }
    return node->entry;
  }

  void insert(absl::string_view name, Entry entry) {
    if (capacity_ == 0) {
      return;
    }
    absl::MutexLock lock(&mutex_);
    lru_.insert(Node{std::string(name), std::move(entry)});
  }

  void erase(absl::string_view name) {
    absl::MutexLock lock(&mutex_);
    lru_.erase(name);
  }

  void clear() {
    absl::MutexLock lock(&mutex_);
    lru_.clear();
  }

  size_t size() const {
    absl::MutexLock lock(&mutex_);
    return lru_.size();
  }

 private:
  struct Node {
    std::string name;
    Entry entry;
  };

  const size_t capacity_;  // 0: caching is off (lru_ would hold one)
  mutable absl::Mutex mutex_;
  Lru<&Node::name, absl::Hash<absl::string_view>> lru_ ABSL_GUARDED_BY(mutex_);
};

DnsCache::DnsCache() : DnsCache(Options{}) {}

DnsCache::DnsCache(const Options& options) : options_(options) {
  const size_t shards = std::clamp<size_t>(options.shards, 1, std::max<size_t>(1, options.capacity));
  shards_.reserve(shards);
  for (size_t i = 0; i < shards; ++i) {
    // Spread the remainder so that the shard capacities add up to exactly `capacity`.
    const size_t capacity = options.capacity / shards + (i < options.capacity % shards ? 1 : 0);
    shards_.push_back(std::make_unique<Shard>(capacity));
  }
}

DnsCache::~DnsCache() = default;

DnsCache::Shard& DnsCache::shardFor(absl::string_view name) const {
  const size_t h = absl::Hash<absl::string_view>{}(name);
  // The shard's own hash map consumes the low bits; pick the shard from the high ones.
  return *shards_[(h >> 32) % shards_.size()];
}

std::optional<DnsCache::Entry> DnsCache::find(absl::string_view name, Clock::time_point now) {
  return shardFor(name).find(name, now);
}

void DnsCache::insert(absl::string_view name, ResolveStatus status,
                      std::vector<IpAddress> addresses, std::chrono::seconds record_ttl,
                      Clock::time_point now) {
  std::chrono::milliseconds ttl;
  switch (status) {
    case ResolveStatus::Ok:
      if (addresses.empty()) {
        return;
      }
      // max(min, min(ttl, max)) rather than std::clamp, which is undefined for min > max.
      ttl = std::max<std::chrono::milliseconds>(
          options_.min_ttl, std::min<std::chrono::milliseconds>(record_ttl, options_.max_ttl));
      break;
    case ResolveStatus::NxDomain:
    case ResolveStatus::NoData:
      addresses.clear();
      ttl = options_.negative_ttl;
      break;
    default:
      return;
  }
  if (ttl <= std::chrono::milliseconds::zero()) {
    return;
  }
  shardFor(name).insert(name, Entry{status, std::move(addresses), now + ttl});
}

void DnsCache::erase(absl::string_view name) { shardFor(name).erase(name); }

void DnsCache::clear() {
  for (auto& shard : shards_) {
    shard->clear();
  }
}

size_t DnsCache::size() const {
  size_t total = 0;
  for (const auto& shard : shards_) {
    total += shard->size();
  }
  return total;
}

}  // namespace shadowrelay::dns
