// SPDX-License-Identifier: Apache-2.0
#include "crypto/random_pool.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "crypto/key_derivation.h"

namespace shadowrelay::crypto {
namespace {

// Bumped in every fork() child; a pool filled under another generation is discarded.
std::atomic<uint64_t> g_fork_generation{0};

void onForkChild() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

uint64_t forkGeneration() { return g_fork_generation.load(std::memory_order_relaxed); }

void registerForkHandler() {
  static const bool registered = [] {
    if (::pthread_atfork(nullptr, nullptr, &onForkChild) != 0) {
      std::abort();  // Without it a fork() child could repeat its parent's salts.
    }
    return true;
  }();
  (void)registered;
}

}  // namespace

RandomPool::RandomPool() { registerForkHandler(); }

RandomPool::~RandomPool() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

void RandomPool::refill() {
  if (RAND_bytes(bytes_.data(), static_cast<int>(bytes_.size())) != 1) {
    std::abort();  // No entropy: nothing safe can be done.
  }
  used_ = 0;
  generation_ = forkGeneration();
  ++refills_;
}

void RandomPool::take(std::span<uint8_t> out) {
  if (out.size() > kMaxTake) {
    randomBytes(out);
    return;
  }
  if (generation_ != forkGeneration()) {
    used_ = kSize;  // filled before a fork(): the parent hands these bytes out too
  }
  size_t done = 0;
  while (done < out.size()) {
    if (used_ == kSize) {
      refill();
    }
    const size_t n = std::min(out.size() - done, kSize - used_);
    std::memcpy(out.data() + done, bytes_.data() + used_, n);
    std::memset(bytes_.data() + used_, 0, n);  // handed out once; not kept in memory
    used_ += n;
    done += n;
  }
}

void saltBytes(std::span<uint8_t> out) {
  thread_local RandomPool pool;
  pool.take(out);
}

}  // namespace shadowrelay::crypto
