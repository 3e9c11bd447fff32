// SPDX-License-Identifier: Apache-2.0
// Shared, sharded DnsCache vs one cache per worker: throughput of cache hits with N threads.
//   bazel run -c opt //tests/dns:dns_cache_bench [-- OPS_PER_THREAD]
// Each variant starts N threads together (a barrier), each doing OPS_PER_THREAD find() hits on
// a 1000-name working set, and reports the aggregate rate over the wall time.
// Results and the decision: docs/DNS.md ("Cache: shared or per worker").
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dns/dns_cache.h"

namespace shadowrelay::dns {
namespace {

constexpr int kNames = 1000;

std::vector<std::string> makeNames() {
  std::vector<std::string> out;
  for (int i = 0; i < kNames; ++i) {
    out.push_back(absl::StrCat("host-", i, ".example.com"));
  }
  return out;
}

std::unique_ptr<DnsCache> filledCache(const std::vector<std::string>& names, size_t shards) {
  DnsCache::Options o;
  o.capacity = 10'000;
  o.shards = shards;
  auto cache = std::make_unique<DnsCache>(o);
  const auto now = DnsCache::Clock::now();
  for (const std::string& n : names) {
    cache->insert(n, ResolveStatus::Ok,
                  {IpAddress::v4({10, 0, 0, 1}), *IpAddress::parse("2001:db8::1")},
                  std::chrono::seconds(300), now);
  }
  return cache;
}

/// Runs `threads` threads, thread t using caches[t % caches.size()]; returns million hits/s.
double measure(const std::vector<std::string>& names, std::vector<std::unique_ptr<DnsCache>>& caches,
               int threads, long ops) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<long> found{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      DnsCache& cache = *caches[static_cast<size_t>(t) % caches.size()];
      const auto now = DnsCache::Clock::now();
      size_t i = static_cast<size_t>(t) * 7919;
      long hits = 0;
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      for (long n = 0; n < ops; ++n) {
        hits += cache.find(names[i++ % kNames], now).has_value() ? 1 : 0;
      }
      found.fetch_add(hits);
    });
  }
  while (ready.load() != threads) {
  }
  const auto start = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  for (std::thread& th : pool) {
    th.join();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (found.load() != ops * threads) {
    std::fprintf(stderr, "unexpected misses\n");
    std::exit(1);
  }
  return static_cast<double>(ops) * threads / seconds / 1e6;
}

}  // namespace
}  // namespace shadowrelay::dns

int main(int argc, char** argv) {
  using shadowrelay::dns::filledCache;
  using shadowrelay::dns::measure;
  const long ops = argc > 1 ? std::atol(argv[1]) : 2'000'000;
  const std::vector<std::string> names = shadowrelay::dns::makeNames();
  std::printf("hardware threads: %u, %ld hits per thread, 1000 names\n",
              std::thread::hardware_concurrency(), ops);
  std::printf("%-28s %8s %14s\n", "variant", "threads", "Mhits/s total");
  for (int threads : {1, 2, 4}) {
    std::vector<std::unique_ptr<shadowrelay::dns::DnsCache>> shared16;
    shared16.push_back(filledCache(names, 16));
    std::vector<std::unique_ptr<shadowrelay::dns::DnsCache>> shared1;
    shared1.push_back(filledCache(names, 1));
    std::vector<std::unique_ptr<shadowrelay::dns::DnsCache>> per_worker;
    for (int t = 0; t < threads; ++t) {
      per_worker.push_back(filledCache(names, 1));
    }
    std::printf("%-28s %8d %14.2f\n", "shared, 16 shards", threads,
                measure(names, shared16, threads, ops));
    std::printf("%-28s %8d %14.2f\n", "shared, 1 shard (one lock)", threads,
                measure(names, shared1, threads, ops));
    std::printf("%-28s %8d %14.2f\n", "per worker", threads,
                measure(names, per_worker, threads, ops));
  }
  return 0;
}
