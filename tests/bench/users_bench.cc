// SPDX-License-Identifier: Apache-2.0
// The accept cost of many users on one port (./dev bench users): trial decryption of a new
// connection's first bytes over 1, 100 and 1000 users, in the worst case (the matching user is
// tried last: a client no hint and no recency favour), and for a returning client (its IP's
// hint opens it at the first try). Also a stranger's probe, which tries every key and fails.
//
// Shadowsocks 2022 with identity headers (SIP023): the same accept over 1, 100, 1000 and 10,000
// users on one port, where the user is found by one hash lookup, and a UDP datagram (64 B and
// 64 KiB) whose identity header names nobody, which costs one AES block and one lookup whatever
// its size.
#include <ctime>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "crypto/aead2022_stream.h"
#include "crypto/aead2022_udp.h"
#include "crypto/aead_stream.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "relay/users/port_identity.h"
#include "relay/users/user_matcher.h"
#include "relay/users/user_table.h"

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

const crypto::MethodInfo& method2022() { return **crypto::findAnyMethod("2022-blake3-aes-128-gcm"); }

crypto::MasterKey key2022(const std::string& seed) {
  return crypto::evpBytesToKey(seed, method2022().key_size);  // any 16 bytes will do
}

/// n 2022 users on the shared port, behind the identity key "ipsk".
UserTablePtr table2022(int n) {
  std::vector<RelayUser> users;
  for (int i = 0; i < n; ++i) {
    RelayUser user;
    user.name = "user" + std::to_string(100000 + i);
    user.method = &method2022();
    user.provider = &crypto::opensslProvider();
    user.key = key2022(user.name);
    users.push_back(std::move(user));
  }
  IdentityKey identity;
  identity.method = &method2022();
  identity.provider = &crypto::opensslProvider();
  identity.key = key2022("ipsk");
  return std::make_shared<const UserTable>(1, std::move(users), nullptr,
                                           std::vector<IdentityKey>{identity});
}

// A new 2022 connection of the last user: salt, identity header, fixed and variable header
// opened, the user found by its hash. The server's work per accepted connection, minus I/O.
void BM_Accept2022(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  UserTablePtr table = table2022(n);
  const PortIdentity* port = table->identityPort(0);
  const crypto::MasterKey keys[] = {key2022("ipsk"),
                                    key2022("user" + std::to_string(100000 + n - 1))};
  const uint64_t now = static_cast<uint64_t>(std::time(nullptr));
  auto encoder = crypto::Aead2022StreamEncoder::request(
      method2022(), crypto::opensslProvider(), keys,
      crypto::SocksAddress::ipv4({192, 0, 2, 1}, 443));
  const uint8_t hello[5] = {'h', 'e', 'l', 'l', 'o'};
  std::vector<uint8_t> request(1024);
  crypto::CodecProgress progress;
  encoder.encode(hello, request, now, &progress);
  request.resize(progress.produced);
  std::vector<uint8_t> out(1024);
  for (auto _ : state) {
    auto decoder = crypto::Aead2022StreamDecoder::request(
        method2022(), crypto::opensslProvider(), port->identityKey(), port);
    crypto::CodecProgress p;
    if (decoder.decode(request, out, now, &p) != crypto::Status2022::Ok) {
      state.SkipWithError("the request did not open");
      break;
    }
    benchmark::DoNotOptimize(p.produced);
  }
}

// A datagram whose identity header names no user of the port: the opener decrypts the
// separate header and the identity header (one AES block each) and looks the hash up; the body
// is never touched, so a 64 KiB datagram costs what a 64 B one does.
void BM_Udp2022UnknownIdentity(benchmark::State& state) {
  UserTablePtr table = table2022(1000);
  const PortIdentity* port = table->identityPort(0);
  const crypto::MasterKey keys[] = {key2022("ipsk"), key2022("nobody")};
  crypto::Udp2022Sealer sealer(method2022(), crypto::opensslProvider(), keys);
  crypto::PacketHeader2022 header;
  header.timestamp = static_cast<uint64_t>(std::time(nullptr));
  header.address = crypto::SocksAddress::ipv4({192, 0, 2, 1}, 53);
  std::vector<uint8_t> payload(static_cast<size_t>(state.range(0)));
  std::vector<uint8_t> packet(sealer.packetSize(header, payload.size()));
  packet.resize(sealer.seal(header, payload, packet));
  crypto::Udp2022Opener opener(method2022(), crypto::opensslProvider(), port->identityKey(),
                               crypto::kClientHeaderType, port);
  std::vector<uint8_t> out(packet.size());
  for (auto _ : state) {
    const auto opened = opener.open(packet, out, header.timestamp);
    if (opened.status != crypto::Status2022::UnknownUser) {
      state.SkipWithError("not refused as an unknown user");
      break;
    }
  }
  state.counters["datagram_bytes"] = static_cast<double>(packet.size());
}

BENCHMARK(BM_Accept2022)->Arg(1)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Udp2022UnknownIdentity)->Arg(64)->Arg(65000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AcceptWorstCase)->Arg(1)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AcceptReturningClient)->Arg(1)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ProbeNoMatch)->Arg(1)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shadowrelay::relay

BENCHMARK_MAIN();
