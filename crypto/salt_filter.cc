// SPDX-License-Identifier: Apache-2.0
#include "crypto/salt_filter.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/key_derivation.h"

namespace shadowrelay::crypto {

struct SaltFilter::Shard {
  explicit Shard(size_t bits_per_filter) : bits(bits_per_filter) {
    for (auto& f : filters) f.assign((bits + 63) / 64, 0);
  }

  bool testIn(const std::vector<uint64_t>& f, const Hashes& h, size_t k) const {
    for (size_t i = 0; i < k; ++i) {
      const uint64_t bit = (h.h1 + i * h.h2) % bits;
      if ((f[bit / 64] & (uint64_t{1} << (bit % 64))) == 0) return false;
    }
    return true;
  }

  bool test(const Hashes& h, size_t k) const {
    return testIn(filters[0], h, k) || testIn(filters[1], h, k);
  }

  /// Sets the bits of `h` in the filter of `salt_epoch`: the current one (rotated first when
  /// the epoch moved on), or the previous one for an insert that raced a rotation.
  void add(const Hashes& h, size_t k, uint64_t salt_epoch) {
    if (salt_epoch > epoch) {
      current ^= 1;
      std::fill(filters[current].begin(), filters[current].end(), 0);
      if (salt_epoch > epoch + 1) {  // two epochs without a salt here: both are too old
        std::fill(filters[current ^ 1].begin(), filters[current ^ 1].end(), 0);
      }
      epoch = salt_epoch;
    }
    auto& f = filters[salt_epoch + 1 == epoch ? current ^ 1 : current];
    for (size_t i = 0; i < k; ++i) {
      const uint64_t bit = (h.h1 + i * h.h2) % bits;
      f[bit / 64] |= uint64_t{1} << (bit % 64);
    }
  }

  mutable absl::Mutex mu;
  std::vector<uint64_t> filters[2];
  const size_t bits;
  uint64_t epoch = 0;  // of filters[current]
  int current = 0;
};

namespace {

constexpr char kMagic[8] = {'S', 'R', 'S', 'A', 'L', 'T', 'F', '1'};
constexpr absl::string_view kChecksumContext = "shadowrelay salt filter snapshot v1";
constexpr size_t kChecksumSize = 32;

/// Bits of one shard filter: sized for the shard's expected share of an epoch plus six standard
/// deviations (salts spread over the shards binomially), so that no shard overfills.
size_t shardBits(uint64_t epoch_size, size_t shards, double fp_rate) {
  const double mean = static_cast<double>(epoch_size) / static_cast<double>(shards);
  const double entries = mean + 6.0 * std::sqrt(mean) + 16.0;
  const double ln2 = std::log(2.0);
  return std::max<size_t>(64, static_cast<size_t>(std::ceil(-entries * std::log(fp_rate) /
                                                            (ln2 * ln2))));
}

void put64(std::string& out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, 8);
}

/// Reads little-endian words off the front of a snapshot.
class Reader {
 public:
  explicit Reader(absl::string_view bytes) : rest_(bytes) {}
  bool get64(uint64_t* v) {
    if (rest_.size() < 8) return false;
    *v = 0;
    for (int i = 7; i >= 0; --i) *v = *v << 8 | static_cast<uint8_t>(rest_[i]);
    rest_.remove_prefix(8);
    return true;
  }
  bool bytes(std::span<uint8_t> out) {
    if (rest_.size() < out.size()) return false;
    std::memcpy(out.data(), rest_.data(), out.size());
    rest_.remove_prefix(out.size());
    return true;
  }
  bool words(std::vector<uint64_t>& out) {
    for (uint64_t& w : out) {
      if (!get64(&w)) return false;
    }
    return true;
  }
  size_t left() const { return rest_.size(); }

 private:
  absl::string_view rest_;
};

std::array<uint8_t, kChecksumSize> checksum(absl::string_view bytes) {
  std::array<uint8_t, kChecksumSize> sum{};
  blake3DeriveKey(kChecksumContext,
                  {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, sum);
  return sum;
}

}  // namespace

SaltFilter::SaltFilter(size_t capacity, double fp_rate, size_t shards)
    : SaltFilter(capacity, fp_rate, shards, nullptr) {
  randomBytes(key_);
}

SaltFilter::SaltFilter(size_t capacity, double fp_rate, size_t shards, HashFunction hash)
    : capacity_(std::max<size_t>(2, capacity)),
      fp_rate_(fp_rate),
      hash_(hash),
      hashes_(std::max<size_t>(1, static_cast<size_t>(std::round(-std::log2(fp_rate))))),
      epoch_size_(capacity_ / 2) {
  shards = std::max<size_t>(1, shards);
  const size_t bits = shardBits(epoch_size_, shards, fp_rate);
  for (size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>(bits));
}

SaltFilter::~SaltFilter() = default;

SaltFilter::Hashes SaltFilter::hashPair(std::span<const uint8_t> salt) const {
  Hashes h;
  if (hash_ != nullptr) {
    h = hash_(salt);
  } else {
    uint8_t out[16];
    blake3KeyedHash(key_, salt, out);
    std::memcpy(&h.h1, out, 8);
    std::memcpy(&h.h2, out + 8, 8);
  }
  h.h2 |= 1;  // odd: the k probes never collapse to one
  return h;
}

SaltFilter::Shard& SaltFilter::shardFor(std::span<const uint8_t> salt) const {
  uint32_t prefix = 0;
  std::memcpy(&prefix, salt.data(), std::min<size_t>(sizeof(prefix), salt.size()));
  return *shards_[prefix % shards_.size()];
}

void SaltFilter::add(Shard& shard, const Hashes& h) {
  const uint64_t n = inserts_.fetch_add(1, std::memory_order_relaxed);
  shard.add(h, hashes_, n / epoch_size_);
}

bool SaltFilter::contains(std::span<const uint8_t> salt) const {
  const Hashes h = hashPair(salt);
  Shard& s = shardFor(salt);
  absl::MutexLock lock(&s.mu);
  return s.test(h, hashes_);
}

void SaltFilter::insert(std::span<const uint8_t> salt) {
  const Hashes h = hashPair(salt);
  Shard& s = shardFor(salt);
  absl::MutexLock lock(&s.mu);
  add(s, h);
}

bool SaltFilter::checkAndInsert(std::span<const uint8_t> salt) {
  const Hashes h = hashPair(salt);
  Shard& s = shardFor(salt);
  absl::MutexLock lock(&s.mu);
  if (s.test(h, hashes_)) return false;
  add(s, h);
  return true;
}

size_t SaltFilter::memoryBytes() const {
  size_t total = 0;
  for (const auto& s : shards_) {
    total += (s->filters[0].size() + s->filters[1].size()) * sizeof(uint64_t);
  }
  return total;
}

// Layout: magic [8]; little-endian 64-bit words capacity, fp_rate (IEEE bits), shards, hashes,
// bits per shard filter; the hash key [32]; inserts; per shard: epoch, current, filters[0]
// words, filters[1] words; then BLAKE3 derive_key(kChecksumContext, everything before) [32].
std::string SaltFilter::snapshot() const {
  std::string out(kMagic, sizeof(kMagic));
  const size_t words = shards_.front()->filters[0].size();
  out.reserve(out.size() + 8 * 8 + shards_.size() * (16 + 2 * 8 * words) + kChecksumSize);
  put64(out, capacity_);
  put64(out, std::bit_cast<uint64_t>(fp_rate_));
  put64(out, shards_.size());
  put64(out, hashes_);
  put64(out, shards_.front()->bits);
  out.append(reinterpret_cast<const char*>(key_.data()), key_.size());
  put64(out, inserts_.load(std::memory_order_relaxed));
  for (const auto& s : shards_) {
    absl::MutexLock lock(&s->mu);
    put64(out, s->epoch);
    put64(out, static_cast<uint64_t>(s->current));
    for (const auto& f : s->filters) {
      for (uint64_t w : f) put64(out, w);
    }
  }
  const auto sum = checksum(out);
  out.append(reinterpret_cast<const char*>(sum.data()), sum.size());
  return out;
}

absl::StatusOr<std::unique_ptr<SaltFilter>> SaltFilter::restore(absl::string_view bytes,
                                                                HashFunction hash) {
  if (bytes.size() < sizeof(kMagic) + kChecksumSize ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::InvalidArgumentError("not a salt filter snapshot (bad magic or too short)");
  }
  const absl::string_view body = bytes.substr(0, bytes.size() - kChecksumSize);
  const auto sum = checksum(body);
  if (std::memcmp(sum.data(), bytes.data() + body.size(), kChecksumSize) != 0) {
    return absl::DataLossError("salt filter snapshot: checksum mismatch (damaged file)");
  }
  Reader r(body.substr(sizeof(kMagic)));
  uint64_t capacity = 0, fp_bits = 0, shards = 0, hashes = 0, bits = 0, inserts = 0;
  Key key;
  if (!r.get64(&capacity) || !r.get64(&fp_bits) || !r.get64(&shards) || !r.get64(&hashes) ||
      !r.get64(&bits) || !r.bytes(key) || !r.get64(&inserts)) {
    return absl::DataLossError("salt filter snapshot: truncated header");
  }
  const double fp_rate = std::bit_cast<double>(fp_bits);
  if (capacity < 2 || capacity > (uint64_t{1} << 40) || shards == 0 || shards > 4096 ||
      !(fp_rate > 0 && fp_rate < 1)) {
    return absl::InvalidArgumentError("salt filter snapshot: implausible parameters");
  }
  auto filter = std::make_unique<SaltFilter>(capacity, fp_rate, shards, hash);
  if (filter->hashes_ != hashes || filter->shards_.front()->bits != bits) {
    return absl::FailedPreconditionError(absl::StrCat(
        "salt filter snapshot: sized by another version (", hashes, " hashes, ", bits,
        " bits per filter; this build makes ", filter->hashes_, " and ",
        filter->shards_.front()->bits, ")"));
  }
  filter->key_ = key;
  filter->inserts_.store(inserts, std::memory_order_relaxed);
  for (auto& s : filter->shards_) {
    uint64_t epoch, current;
    if (!r.get64(&epoch) || !r.get64(&current) || current > 1 || !r.words(s->filters[0]) ||
        !r.words(s->filters[1])) {
      return absl::DataLossError("salt filter snapshot: truncated shard");
    }
    s->epoch = epoch;
    s->current = static_cast<int>(current);
  }
  if (r.left() != 0) return absl::DataLossError("salt filter snapshot: trailing bytes");
  return filter;
}

}  // namespace shadowrelay::crypto
