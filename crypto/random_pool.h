// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace shadowrelay::crypto {

/// Random bytes handed out from a buffer that OpenSSL's RAND_bytes refills kSize bytes at a
/// time: one call serves 128 salts of 32 bytes (RAND_bytes takes locks and calls getpid() every
/// time; docs/PERFORMANCE.md, "Why the code is as it is").
///
/// For public values only (salts): bytes wait in memory until they are handed out, so secrets
/// (keys) still come from randomBytes(). A fork() child discards what its parent buffered (a
/// pthread_atfork handler bumps a generation number), so parent and child never hand out the
/// same bytes; OpenSSL reseeds in the child by itself. Not thread-safe: saltBytes() keeps one
/// pool per thread.
class RandomPool {
 public:
  static constexpr size_t kSize = 4096;
  /// Requests larger than this go to RAND_bytes directly.
  static constexpr size_t kMaxTake = kSize / 4;

  RandomPool();
  ~RandomPool();
  RandomPool(const RandomPool&) = delete;
  RandomPool& operator=(const RandomPool&) = delete;

  /// Fills `out` with random bytes, each handed out once. Aborts if the RNG fails.
  void take(std::span<uint8_t> out);

  /// RAND_bytes calls made to refill the buffer (not counting requests above kMaxTake).
  uint64_t refills() const { return refills_; }
  /// Bytes left before the next refill.
  size_t available() const { return kSize - used_; }

 private:
  void refill();

  std::array<uint8_t, kSize> bytes_;
  size_t used_ = kSize;  // empty: the first take() refills
  uint64_t generation_ = 0;
  uint64_t refills_ = 0;
};

/// Random bytes for a salt from this thread's RandomPool.
void saltBytes(std::span<uint8_t> out);

}  // namespace shadowrelay::crypto
