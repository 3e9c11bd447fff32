// SPDX-License-Identifier: Apache-2.0
// The accept cost of many users on one port (./dev bench users): trial decryption of a new
// connection's first bytes over 1, 100 and 1000 users, in the worst case (the matching user is
// tried last: a client no hint and no recency favour), and for a returning client (its IP's
// hint opens it at the first try). Also a stranger's probe, which tries every key and fails.
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "crypto/aead_stream.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "relay/users/user_matcher.h"

namespace shadowrelay::relay {
namespace {

RelayUser makeUser(int i) {
  RelayUser user;
  user.name = "user" + std::to_string(100000 + i);
  user.method = *crypto::findMethod("chacha20-ietf-poly1305");
  user.provider = &crypto::opensslProvider();
  user.key = crypto::evpBytesToKey(user.name, user.method->key_size);
  return user;
}

std::vector<uint8_t> streamStart(const RelayUser& user) {
  crypto::AeadStreamEncoder encoder(*user.method, *user.provider, user.key.bytes());
  const uint8_t hello[5] = {'h', 'e', 'l', 'l', 'o'};
  std::vector<uint8_t> out(128);
  crypto::CodecProgress progress;
  encoder.encode(hello, out, &progress);
  out.resize(progress.produced);
  return out;
}

UserTablePtr tableOf(int n) {
  std::vector<RelayUser> users;
  for (int i = 0; i < n; ++i) users.push_back(makeUser(i));
  return std::make_shared<const UserTable>(1, std::move(users), nullptr);
}

// Worst case: a fresh matcher per iteration would measure setTable; instead every iteration
// swaps in the table again (order back to name order, hints kept) and asks for the last user
// from a new IP.
void BM_AcceptWorstCase(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  UserTablePtr table = tableOf(n);
  const auto start = streamStart(*table->find("user" + std::to_string(100000 + n - 1)));
  uint64_t ip = 0;
  uint64_t trials = 0;
  for (auto _ : state) {
    state.PauseTiming();
    UserMatcher matcher;
    matcher.setTable(table);
    const std::string client(reinterpret_cast<const char*>(&++ip), sizeof(ip));
    state.ResumeTiming();
    RelayUserPtr user;
    benchmark::DoNotOptimize(matcher.matchStream(0, client, start, &user));
    trials += matcher.trials();
  }
  state.counters["trials"] = benchmark::Counter(static_cast<double>(trials),
                                                benchmark::Counter::kAvgIterations);
}

// A returning client: its IP's last user first.
void BM_AcceptReturningClient(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  UserMatcher matcher;
  matcher.setTable(tableOf(n));
  const auto start = streamStart(*matcher.table()->find("user" + std::to_string(100000 + n / 2)));
  RelayUserPtr user;
  matcher.matchStream(0, "client", start, &user);  // learns the hint
  const uint64_t before = matcher.trials();
  for (auto _ : state) {
    benchmark::DoNotOptimize(matcher.matchStream(0, "client", start, &user));
  }
  state.counters["trials"] = benchmark::Counter(static_cast<double>(matcher.trials() - before),
                                                benchmark::Counter::kAvgIterations);
}

// A probe with no user's key: every key is tried.
void BM_ProbeNoMatch(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  UserMatcher matcher;
  matcher.setTable(tableOf(n));
  RelayUser stranger = makeUser(-1);
  stranger.name = "stranger";
  const auto start = streamStart(stranger);
  RelayUserPtr user;
  for (auto _ : state) {
    benchmark::DoNotOptimize(matcher.matchStream(0, "prober", start, &user));
  }
}

BENCHMARK(BM_AcceptWorstCase)->Arg(1)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AcceptReturningClient)->Arg(1)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ProbeNoMatch)->Arg(1)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shadowrelay::relay

BENCHMARK_MAIN();
