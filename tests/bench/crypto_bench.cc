// SPDX-License-Identifier: Apache-2.0
// Seal/open throughput per provider x method at 16 KiB and 1 KiB (./dev bench crypto).
#include <benchmark/benchmark.h>

#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "crypto/boringssl_provider.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "crypto/salt_filter.h"

namespace shadowrelay::crypto {
namespace {

const AeadProvider* boringssl() {
  static std::unique_ptr<AeadProvider> p = [] {
    auto loaded = loadBoringsslProvider();
    return loaded.ok() ? std::move(*loaded) : nullptr;
  }();
  return p.get();
}

void runAead(benchmark::State& state, const AeadProvider* provider, const MethodInfo* m,
             bool seal) {
  if (provider == nullptr) {
    state.SkipWithError("provider unavailable");
    return;
  }
  const size_t len = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> key(m->key_size, 7);
  AeadPtr aead = provider->create(m->algorithm, key);
  std::vector<uint8_t> buf(len + kTagSize, 1);
  std::vector<uint8_t> nonce(m->nonce_size, 0);
  std::vector<uint8_t> sealed(len + kTagSize);
  aead->seal(nonce, {}, std::span<const uint8_t>(buf).first(len), sealed.data());
  for (auto _ : state) {
    if (seal) {
      // In place, as the relay does.
      benchmark::DoNotOptimize(
          aead->seal(nonce, {}, std::span<const uint8_t>(buf).first(len), buf.data()));
    } else {
      benchmark::DoNotOptimize(aead->open(nonce, {}, sealed, buf.data()));
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * len));
}

int registerAll() {
  for (const MethodInfo& m : allMethods()) {
    for (const char* provider : {"openssl", "boringssl"}) {
      for (bool seal : {true, false}) {
        const std::string name =
            std::string(seal ? "Seal/" : "Open/") + provider + "/" + std::string(m.name);
        const MethodInfo* mp = &m;
        const bool is_openssl = std::string(provider) == "openssl";
        benchmark::RegisterBenchmark(name.c_str(),
                                     [mp, seal, is_openssl](benchmark::State& s) {
                                       runAead(s, is_openssl ? &opensslProvider() : boringssl(),
                                               mp, seal);
                                     })
            ->Arg(16384)
            ->Arg(1024);
      }
    }
  }
  return 0;
}

const int kRegistered = registerAll();

// The replay filter's cost per new salt (a TCP connection or a UDP packet of a 2017 method):
// one keyed BLAKE3 block and 30 bit probes in a 5.6 MiB filter.
void saltFilterCheckAndInsert(benchmark::State& state) {
  SaltFilter filter;
  std::array<uint8_t, 32> salt{};
  uint64_t i = 0;
  for (auto _ : state) {
    ++i;
    std::memcpy(salt.data(), &i, sizeof(i));
    benchmark::DoNotOptimize(filter.checkAndInsert(salt));
  }
}
BENCHMARK(saltFilterCheckAndInsert)->Name("SaltFilter/checkAndInsert");

}  // namespace
}  // namespace shadowrelay::crypto

BENCHMARK_MAIN();
