// SPDX-License-Identifier: Apache-2.0
#include "relay/context/worker_budgets.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "dns/lru.h"

namespace shadowrelay::relay {

void TokenBucket::refill(Clock::time_point now) {
  if (now <= last_) return;
  const double seconds = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + seconds * rate_);
  last_ = now;
}

BudgetHold& BudgetHold::operator=(BudgetHold&& other) noexcept {
  if (this != &other) {
    reset();
    budget_ = other.budget_;
    bytes_ = other.bytes_;
    other.budget_ = nullptr;
  }
  return *this;
}

void BudgetHold::reset() {
  if (budget_ != nullptr) budget_->give(bytes_);
  budget_ = nullptr;
}

namespace {
// A bucket's burst: an eighth of a second of its rate (at least one trial per datagram's worth),
// so that a full bucket spent at once stalls the loop for a few milliseconds at most.
double burstOf(double rate) { return std::max(64.0, rate / 8); }
}  // namespace

struct WorkerBudgets::Sources {
  struct Entry {
    std::string key;
    Source source;
  };
  explicit Sources(size_t capacity) : lru(capacity) {}
  dns::Lru<&Entry::key> lru;
};

WorkerBudgets::WorkerBudgets(const BudgetOptions& options, Clock::time_point now)
    : options_(options),
      worker_trials_(options.trials_per_second, burstOf(options.trials_per_second), now),
      sources_(std::make_unique<Sources>(kMaxSources)),
      queue_bytes_(options.queue_bytes) {}

WorkerBudgets::~WorkerBudgets() = default;

std::string WorkerBudgets::sourceKey(const SocketAddress& address) {
  return relay::sourceKey(address);
}

WorkerBudgets::Source& WorkerBudgets::source(const std::string& key, Clock::time_point now) {
  if (Sources::Entry* entry = sources_->lru.find(key)) return entry->source;
  const double rate = options_.source_trials_per_second;
  return sources_->lru.insert(Sources::Entry{key, Source{TokenBucket(rate, burstOf(rate), now)}})
      .source;
}

uint64_t WorkerBudgets::trialsAllowed(Source& source, Clock::time_point now) {
  return std::min(source.bucket.available(now), worker_trials_.available(now));
}

void WorkerBudgets::chargeTrials(Source& source, uint64_t failed, Clock::time_point now) {
  if (failed == 0) return;
  source.bucket.take(failed, now);
  worker_trials_.take(failed, now);
}

}  // namespace shadowrelay::relay
