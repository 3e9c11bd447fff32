// SPDX-License-Identifier: Apache-2.0
#include "crypto/salt_store_2022.h"

#include <algorithm>
#include <cstring>

namespace shadowrelay::crypto {

SaltStore2022::SaltStore2022(size_t max_entries) : max_entries_(max_entries) {}

void SaltStore2022::expireLocked(uint64_t current) {
  for (Bucket& bucket : buckets_) {
    if (bucket.salts.empty() || bucket.index + kBuckets > current) continue;
    size_ -= bucket.salts.size();
    bucket.salts = {};  // frees the table: a burst's memory does not stay
  }
}

SaltStore2022::Result SaltStore2022::checkAndInsert(std::span<const uint8_t> salt, uint64_t now) {
  Key key{};
  const size_t n = std::min(salt.size(), kMaxSaltSize);
  std::memcpy(key.data(), salt.data(), n);
  key[kMaxSaltSize] = static_cast<uint8_t>(n);
  absl::MutexLock lock(&mu_);
  current_ = std::max(current_, now / kBucketSeconds);
  expireLocked(current_);
  for (const Bucket& bucket : buckets_) {
    if (bucket.salts.contains(key)) return Result::Replayed;
  }
  if (size_ >= max_entries_) return Result::Full;
  Bucket& bucket = buckets_[current_ % kBuckets];
  if (bucket.index != current_) {
    // Empty: expireLocked() dropped whatever an older index left in this slot.
    bucket.index = current_;
  }
  bucket.salts.insert(key);
  ++size_;
  return Result::Fresh;
}

size_t SaltStore2022::size() const {
  absl::MutexLock lock(&mu_);
  return size_;
}

}  // namespace shadowrelay::crypto
