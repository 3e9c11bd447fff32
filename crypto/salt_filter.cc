// SPDX-License-Identifier: Apache-2.0
#include "crypto/salt_filter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include "absl/strings/string_view.h"

#include "absl/hash/hash.h"
#include "crypto/key_derivation.h"

namespace shadowrelay::crypto {

struct SaltFilter::Shard {
  Shard(size_t bits_per_filter, size_t half_capacity)
      : bits(bits_per_filter), half(half_capacity) {
    for (auto& f : filters) {
      f.assign((bits + 63) / 64, 0);
    }
  }

  bool testIn(const std::vector<uint64_t>& f, uint64_t h1, uint64_t h2, size_t k) const {
    for (size_t i = 0; i < k; ++i) {
      const uint64_t bit = (h1 + i * h2) % bits;
      if ((f[bit / 64] & (uint64_t{1} << (bit % 64))) == 0) {
        return false;
      }
    }
    return true;
  }

  bool test(uint64_t h1, uint64_t h2, size_t k) const {
    return testIn(filters[0], h1, h2, k) || testIn(filters[1], h1, h2, k);
  }

  void add(uint64_t h1, uint64_t h2, size_t k) {
    if (count == half) {
      current ^= 1;
      std::fill(filters[current].begin(), filters[current].end(), 0);
      count = 0;
    }
    auto& f = filters[current];
    for (size_t i = 0; i < k; ++i) {
      const uint64_t bit = (h1 + i * h2) % bits;
      f[bit / 64] |= uint64_t{1} << (bit % 64);
    }
    ++count;
  }

  mutable absl::Mutex mu;
  std::vector<uint64_t> filters[2];
  size_t bits;
  size_t half;
  size_t count = 0;
  int current = 0;
};

namespace {

// Keyed per process so that nobody can precompute colliding salts.
struct HashKey {
  uint64_t a;
  uint64_t b;
};
const HashKey& hashKey() {
  static const HashKey key = [] {
    HashKey k;
    randomBytes({reinterpret_cast<uint8_t*>(&k), sizeof(k)});
    return k;
  }();
  return key;
}

SaltFilter::Hashes keyedHashes(std::span<const uint8_t> salt) {
  const absl::string_view view(reinterpret_cast<const char*>(salt.data()), salt.size());
  return {absl::HashOf(hashKey().a, view), absl::HashOf(view, hashKey().b)};
}

}  // namespace

SaltFilter::SaltFilter(size_t capacity, double fp_rate, size_t shards)
    : SaltFilter(capacity, fp_rate, shards, &keyedHashes) {}

SaltFilter::SaltFilter(size_t capacity, double fp_rate, size_t shards, HashFunction hash)
    : hash_(hash) {
  shards = std::max<size_t>(1, shards);
  const size_t half = std::max<size_t>(1, capacity / 2 / shards);
  const double ln2 = std::log(2.0);
  const size_t bits = static_cast<size_t>(
      std::ceil(-static_cast<double>(half) * std::log(fp_rate) / (ln2 * ln2)));
  hashes_ = std::max<size_t>(1, static_cast<size_t>(std::round(-std::log2(fp_rate))));
  for (size_t i = 0; i < shards; ++i) {
    shards_.push_back(std::make_unique<Shard>(std::max<size_t>(64, bits), half));
  }
}

SaltFilter::~SaltFilter() = default;

SaltFilter::Hashes SaltFilter::hashPair(std::span<const uint8_t> salt) const {
  Hashes h = hash_(salt);
  h.h2 |= 1;  // odd: the k probes never collapse to one
  return h;
}

SaltFilter::Shard& SaltFilter::shardFor(std::span<const uint8_t> salt) const {
  uint32_t prefix = 0;
  std::memcpy(&prefix, salt.data(), std::min<size_t>(sizeof(prefix), salt.size()));
  return *shards_[prefix % shards_.size()];
}

bool SaltFilter::contains(std::span<const uint8_t> salt) const {
  const auto [h1, h2] = hashPair(salt);
  Shard& s = shardFor(salt);
  absl::MutexLock lock(&s.mu);
  return s.test(h1, h2, hashes_);
}

void SaltFilter::insert(std::span<const uint8_t> salt) {
  const auto [h1, h2] = hashPair(salt);
  Shard& s = shardFor(salt);
  absl::MutexLock lock(&s.mu);
  s.add(h1, h2, hashes_);
}

bool SaltFilter::checkAndInsert(std::span<const uint8_t> salt) {
  const auto [h1, h2] = hashPair(salt);
  Shard& s = shardFor(salt);
  absl::MutexLock lock(&s.mu);
  if (s.test(h1, h2, hashes_)) {
    return false;
  }
  s.add(h1, h2, hashes_);
  return true;
}

size_t SaltFilter::memoryBytes() const {
  size_t total = 0;
  for (const auto& s : shards_) {
    total += (s->filters[0].size() + s->filters[1].size()) * sizeof(uint64_t);
  }
  return total;
}

}  // namespace shadowrelay::crypto
