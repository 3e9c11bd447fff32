// SPDX-License-Identifier: Apache-2.0
#include "tests/testing/test_worker_context.h"

#include <string>
#include <utility>

#include "dns/cares_resolver.h"
#include "relay/dns_adapter/loop_event_driver.h"

namespace shadowrelay::relay::testing {

TestWorkerContext::TestWorkerContext(EventLoop& loop, RelayEnv& env)
    : loop_(loop),
      env_(env),
      scratch_in_(std::make_unique<uint8_t[]>(kScratchSize)),
      scratch_out_(std::make_unique<uint8_t[]>(kScratchSize)) {
  if (env_.salt_filter == nullptr) env_.salt_filter = &salt_filter_;
  if (env_.udp_salt_filter == nullptr) env_.udp_salt_filter = &udp_salt_filter_;
  if (env_.dns_cache == nullptr) env_.dns_cache = &dns_cache_;
  budgets_ = std::make_unique<WorkerBudgets>(env_.budgetOptions());
}

TestWorkerContext::~TestWorkerContext() {
  if (resolver_) resolver_->cancelAll();
  resolver_.reset();
  driver_.reset();
}

absl::Status TestWorkerContext::init() {
  driver_ = std::make_unique<LoopEventDriver>(loop_);
  dns::ResolverOptions options;
  options.servers = env_.config.nameserver;
  auto resolver = dns::CaresResolver::create(*driver_, *env_.dns_cache, options, nullptr);
  if (!resolver.ok()) return resolver.status();
  resolver_ = std::move(*resolver);
  return absl::OkStatus();
}

UserTraffic& TestWorkerContext::traffic(absl::string_view name) {
  return sample_.users[std::string(name)];
}

void TestWorkerContext::startStream(Fd fd, const crypto::SocksAddress& target) {
  streams_.push_back({std::move(fd), target});
}

}  // namespace shadowrelay::relay::testing
