// SPDX-License-Identifier: Apache-2.0
// ServerSession with a Shadowsocks 2022 method (PROTOCOL.md §2.4) on a real Worker and
// EventLoop: the client is the crypto layer's 2022 request encoder and response decoder (checked
// against the §2.8 vectors in tests/crypto), or headers sealed here by hand for what that
// encoder never sends. Every rejection: no byte back, no connect, a FIN at the deadline.
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead2022.h"
#include "crypto/aead2022_stream.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "crypto/salt_store_2022.h"
#include "dns/dns_cache.h"
#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/tcp_stats.h"
#include "relay/tcp/server_session.h"
#include "relay/worker/worker.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/reference_client.h"
#include "tests/testing/run_loop.h"
#include "tests/testing/test_users.h"

// In the tests' namespace: the loopback and loop helpers unqualified.
namespace shadowrelay::relay::testing {
namespace {

using shadowrelay::testing::bytesOf;
using std::chrono::seconds;

class ServerSession2022Test : public ::testing::TestWithParam<const char*> {
 protected:
  ServerSession2022Test() {
    env_.config.role = Role::Server;
    env_.config.allow_private = true;
    env_.config.nameserver = "127.0.0.1:1";
    env_.salt_filter = nullptr;  // the Bloom filter is never used for 2022: a use would crash
    env_.salt_store_2022 = &salt_store_;
    env_.dns_cache = &dns_cache_;
    env_.handshake_timeout = seconds(1);
    env_.connect_timeout = seconds(3);
    env_.io_uring = false;
    method_ = *crypto::findAnyMethod(GetParam());
    std::vector<uint8_t> psk(method_->key_size);
    for (size_t i = 0; i < psk.size(); ++i) psk[i] = static_cast<uint8_t>(i);
    psk_ = crypto::MasterKey(psk);
    for (size_t i = 0; i < psk.size(); ++i) psk[i] = static_cast<uint8_t>(0xF0 - i);
    wrong_psk_ = crypto::MasterKey(psk);
  }

  void start() {
    RelayUser user;
    user.name = "alice";
    user.method = method_;
    user.provider = &crypto::opensslProvider();
    user.key = psk_;
    startWith(makeTable({std::move(user)}));
  }
  void startWith(UserTablePtr table) {
    worker_ = std::make_unique<Worker>(loop_, env_, 0);
    ASSERT_TRUE(worker_->init().ok());
    table_ = std::move(table);
    worker_->setUsers(table_);
    worker_->addListener(listenLoopback());
    port_ = worker_->listenPortForTest();
    ASSERT_NE(port_, 0);
  }

  crypto::Aead2022StreamEncoder encoder(const crypto::MasterKey& key, const Fd& target,
                                        std::span<const uint8_t> salt = {}) {
    return encoder(std::span<const crypto::MasterKey>(&key, 1), target, salt);
  }
  // `keys`: iPSK_1..iPSK_k then the user's PSK (one identity header per iPSK).
  crypto::Aead2022StreamEncoder encoder(std::span<const crypto::MasterKey> keys, const Fd& target,
                                        std::span<const uint8_t> salt = {}) {
    return crypto::Aead2022StreamEncoder::request(*method_, crypto::opensslProvider(), keys,
                                                  loopbackTarget(portOf(target.get())),
                                                  std::nullopt, salt);
  }
  // Reads the response on `client` with `psk` until `want` bytes opened; empty on a failure.
  std::string readResponse(const Fd& client, const crypto::MasterKey& psk,
                           std::span<const uint8_t> request_salt, size_t want) {
    crypto::Aead2022StreamDecoder dec = crypto::Aead2022StreamDecoder::response(
        *method_, crypto::opensslProvider(), psk.bytes(), request_salt);
    std::vector<uint8_t> wire;
    std::string opened;
    bool ok = true;
    runUntil(loop_, [&] {
      readAvailable(client.get(), &wire);
      std::vector<uint8_t> out(wire.size() + 1);
      crypto::CodecProgress progress;
      ok = dec.decode(wire, out, loop_.unixSeconds(), &progress) == crypto::Status2022::Ok;
      opened.append(out.begin(), out.begin() + static_cast<long>(progress.produced));
      wire.erase(wire.begin(), wire.begin() + static_cast<long>(progress.consumed));
      return !ok || opened.size() >= want;
    });
    return ok ? opened : std::string();
  }
  static std::vector<uint8_t> encode(crypto::Aead2022StreamEncoder& enc, const std::string& data,
                                     uint64_t now) {
    std::vector<uint8_t> out(enc.maxEncodedSize(data.size()));
    crypto::CodecProgress progress;
    EXPECT_TRUE(enc.encode(bytesOf(data), out, now, &progress));
    EXPECT_EQ(progress.consumed, data.size());
    out.resize(progress.produced);
    return out;
  }
  // Request headers sealed here: `type` and the variable header `variable` as given.
  std::vector<uint8_t> handMade(uint8_t type, std::span<const uint8_t> variable) {
    std::vector<uint8_t> salt(method_->salt_size);
    crypto::randomBytes(salt);
    crypto::AeadPtr aead;
    EXPECT_TRUE(
        crypto::keySession2022(*method_, crypto::opensslProvider(), psk_.bytes(), salt, aead));
    uint8_t fixed[11];
    fixed[0] = type;
    crypto::storeBe64(fixed + 1, loop_.unixSeconds());
    crypto::storeBe16(fixed + 9, static_cast<uint16_t>(variable.size()));
    std::vector<uint8_t> wire = salt;
    std::vector<uint8_t> nonce(12, 0);
    const size_t at = wire.size();
    wire.resize(at + 11 + 16 + variable.size() + 16);
    EXPECT_TRUE(aead->seal(nonce, {}, fixed, wire.data() + at));
    nonce[0] = 1;
    EXPECT_TRUE(aead->seal(nonce, {}, variable, wire.data() + at + 27));
    return wire;
  }
  uint64_t closed(CloseReason reason) {
    return worker_->stats().closed[static_cast<size_t>(reason)];
  }
  // The client sent `wire`, was rejected (`counter` went to 1): it hears nothing, no connect
  // is made, and the FIN comes at the handshake deadline, not before.
  void expectProbeHandling(const std::vector<uint8_t>& wire, const uint64_t& counter,
                           CloseReason reason, const Fd& target) {
    const auto started = Clock::now();
    Fd client = connectLoopback(port_);
    ASSERT_TRUE(sendBytes(client.get(), wire));
    ASSERT_TRUE(runUntil(loop_, [&] { return counter == 1; }));
    std::vector<uint8_t> at_client;
    runIterations(loop_, kSettleIterations);
    EXPECT_TRUE(readAvailable(client.get(), &at_client));                   // still open
    ASSERT_TRUE(sendBytes(client.get(), std::vector<uint8_t>(100, 0x41)));  // drained
    ASSERT_TRUE(waitForEof(loop_, client.get(), &at_client));
    EXPECT_GE(Clock::now() - started, env_.handshake_timeout);
    EXPECT_TRUE(at_client.empty()) << at_client.size() << " bytes sent back";
    EXPECT_FALSE(tryAccept(target.get()).valid());
    client.reset();
    ASSERT_TRUE(runUntil(loop_, [&] { return closed(reason) == 1; }));
  }

  const crypto::MethodInfo* method_ = nullptr;
  crypto::MasterKey psk_;
  crypto::MasterKey wrong_psk_;
  crypto::SaltStore2022 salt_store_;
  dns::DnsCache dns_cache_;
  RelayEnv env_;
  EventLoop loop_;
  UserTablePtr table_;
  std::unique_ptr<Worker> worker_;
  uint16_t port_ = 0;
};

TEST_P(ServerSession2022Test, RelaysBothWaysWithWholeChunksOfUpTo0xFFFF) {
  start();
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  crypto::Aead2022StreamEncoder enc = encoder(psk_, target);
  ASSERT_TRUE(sendBytes(client.get(), encode(enc, "hello", loop_.unixSeconds())));
  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());
  std::vector<uint8_t> at_target;
  ASSERT_TRUE(readAtLeast(loop_, upstream.get(), 5, &at_target));
  EXPECT_EQ(at_target, bytesOf("hello"));  // the initial payload, no header

  // 200,000 bytes each way: the client's in one 0xFFFF chunk after another.
  std::string big(200'000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 256);
  ASSERT_TRUE(sendBytes(client.get(), encode(enc, big, 0)));
  ASSERT_TRUE(readAtLeast(loop_, upstream.get(), 5 + big.size(), &at_target));
  EXPECT_EQ(std::string(at_target.begin() + 5, at_target.end()), big);

  ASSERT_TRUE(sendText(upstream.get(), big));
  crypto::Aead2022StreamDecoder dec = crypto::Aead2022StreamDecoder::response(
      *method_, crypto::opensslProvider(), psk_.bytes(), enc.salt());
  std::vector<uint8_t> wire;
  std::string opened;
  ASSERT_TRUE(runUntil(loop_, [&] {
    readAvailable(client.get(), &wire);
    std::vector<uint8_t> out(wire.size() + 1);
    crypto::CodecProgress progress;
    EXPECT_EQ(dec.decode(wire, out, loop_.unixSeconds(), &progress), crypto::Status2022::Ok);
    opened.append(out.begin(), out.begin() + static_cast<long>(progress.produced));
    wire.erase(wire.begin(), wire.begin() + static_cast<long>(progress.consumed));
    return opened.size() >= big.size();
  }));
  EXPECT_TRUE(dec.authenticated());  // type 1, fresh timestamp, our salt echoed
  EXPECT_EQ(opened, big);
  EXPECT_EQ(salt_store_.size(), 1u);
  EXPECT_EQ(worker_->stats().auth_failed, 0u);
}

TEST_P(ServerSession2022Test, PaddingWithoutPayloadIsAccepted) {
  start();
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  crypto::Aead2022StreamEncoder enc = encoder(psk_, target);
  ASSERT_TRUE(sendBytes(client.get(), encode(enc, "", loop_.unixSeconds())));  // padded 1..900
  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());
  ASSERT_TRUE(sendBytes(client.get(), encode(enc, "later", 0)));
  EXPECT_EQ(readSettled(loop_, upstream.get(), 5), bytesOf("later"));
}

TEST_P(ServerSession2022Test, FirstUnitArrivingInPiecesStillOpens) {
  start();
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  crypto::Aead2022StreamEncoder enc = encoder(psk_, target);
  const std::vector<uint8_t> wire = encode(enc, "piecewise", loop_.unixSeconds());
  for (size_t i = 0; i < wire.size(); i += 7) {
    const size_t n = std::min<size_t>(7, wire.size() - i);
    ASSERT_TRUE(sendBytes(client.get(), std::span<const uint8_t>(wire).subspan(i, n)));
    runIterations(loop_, 2);
  }
  Fd upstream = acceptWithin(loop_, target.get());
  EXPECT_EQ(readSettled(loop_, upstream.get(), 9), bytesOf("piecewise"));
}

TEST_P(ServerSession2022Test, WrongKeyGetsNoByteAndAFinAtTheDeadline) {
  start();
  Fd target = listenLoopback();
  crypto::Aead2022StreamEncoder enc = encoder(wrong_psk_, target);
  expectProbeHandling(encode(enc, "hello", loop_.unixSeconds()), worker_->stats().auth_failed,
                      CloseReason::AuthFailed, target);
  EXPECT_EQ(worker_->stats().bytes_to_clients, 0u);
  EXPECT_EQ(salt_store_.size(), 0u);  // nothing unauthenticated is stored
}

TEST_P(ServerSession2022Test, StaleTimestampIsRejectedLikeAProbe) {
  start();
  Fd target = listenLoopback();
  crypto::Aead2022StreamEncoder enc = encoder(psk_, target);
  expectProbeHandling(encode(enc, "hello", loop_.unixSeconds() - 120),
                      worker_->stats().stale_timestamps, CloseReason::StaleTimestamp, target);
  EXPECT_EQ(salt_store_.size(), 0u);
  EXPECT_EQ(worker_->stats().auth_failed, 0u);
  EXPECT_EQ(worker_->stats().replayed_salts, 0u);  // not a replayed salt: a counter of its own
}

TEST_P(ServerSession2022Test, ReplayedRequestIsRejectedLikeAProbe) {
  start();
  Fd target = listenLoopback();
  crypto::Aead2022StreamEncoder enc = encoder(psk_, target);
  const std::vector<uint8_t> wire = encode(enc, "once", loop_.unixSeconds());
  Fd client1 = connectLoopback(port_);
  ASSERT_TRUE(sendBytes(client1.get(), wire));
  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());
  expectProbeHandling(wire, worker_->stats().replayed_salts, CloseReason::ReplayedSalt, target);
  EXPECT_EQ(salt_store_.size(), 1u);
}

TEST_P(ServerSession2022Test, ReflectedTypeIsRejected) {
  start();
  Fd target = listenLoopback();
  const std::vector<uint8_t> variable =
      concat(addressBytes(loopbackTarget(portOf(target.get()))), std::vector<uint8_t>{0, 0, 'x'});
  expectProbeHandling(handMade(crypto::kServerHeaderType, variable), worker_->stats().auth_failed,
                      CloseReason::AuthFailed, target);
}

TEST_P(ServerSession2022Test, NeitherPaddingNorPayloadIsRejected) {
  start();
  Fd target = listenLoopback();
  const std::vector<uint8_t> variable =
      concat(addressBytes(loopbackTarget(portOf(target.get()))), std::vector<uint8_t>{0, 0});
  expectProbeHandling(handMade(crypto::kClientHeaderType, variable), worker_->stats().bad_addresses,
                      CloseReason::BadAddress, target);
}

TEST_P(ServerSession2022Test, ASaltStoreAtItsCapRefusesNewSessions) {
  crypto::SaltStore2022 full(0);
  env_.salt_store_2022 = &full;
  start();
  Fd target = listenLoopback();
  crypto::Aead2022StreamEncoder enc = encoder(psk_, target);
  expectProbeHandling(encode(enc, "hello", loop_.unixSeconds()), worker_->stats().replayed_salts,
                      CloseReason::ReplayedSalt, target);
}

std::string methodTestName(const ::testing::TestParamInfo<const char*>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Methods, ServerSession2022Test,
                         ::testing::Values("2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm",
                                           "2022-blake3-chacha20-poly1305"),
                         methodTestName);

// SIP023 (§2.7): a port with an identity key (iPSK) and users; each client sends iPSK:uPSK.
class ServerSessionIdentityTest : public ServerSession2022Test {
 protected:
  // The shared port's users: "default" holds the iPSK (psk_, as -k does), alice and bob have
  // their own keys; carol is disabled.
  void startWithUsers() {
    std::vector<RelayUser> users;
    users.push_back(user("default", psk_));
    users.push_back(user("alice", alice_));
    users.push_back(user("bob", bob_));
    RelayUser carol = user("carol", carol_);
    carol.enabled = false;
    users.push_back(std::move(carol));
    startWith(tableOf(std::move(users), 1));
  }
  RelayUser user(const std::string& name, const crypto::MasterKey& key) {
    RelayUser u;
    u.name = name;
    u.method = method_;
    u.provider = &crypto::opensslProvider();
    u.key = key;
    return u;
  }
  UserTablePtr tableOf(std::vector<RelayUser> users, uint64_t generation) {
    IdentityKey identity;
    identity.method = method_;
    identity.provider = &crypto::opensslProvider();
    identity.key = psk_;
    std::vector<IdentityKey> keys;
    keys.push_back(std::move(identity));
    return makeTable(std::move(users), generation, table_.get(), std::move(keys));
  }
  crypto::MasterKey keyOf(uint8_t seed) {
    std::vector<uint8_t> bytes(method_->key_size);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(seed + 3 * i);
    return crypto::MasterKey(bytes);
  }
  std::vector<crypto::MasterKey> chain(const crypto::MasterKey& upsk) { return {psk_, upsk}; }
  // A request under `keys` brings `text` to `target`: {the client's socket, the target's}.
  std::pair<Fd, Fd> expectRelayed(std::span<const crypto::MasterKey> keys, const Fd& target,
                                  const std::string& text) {
    crypto::Aead2022StreamEncoder enc = encoder(keys, target);
    Fd client = connectLoopback(port_);
    EXPECT_TRUE(sendBytes(client.get(), encode(enc, text, loop_.unixSeconds())));
    Fd upstream = acceptWithin(loop_, target.get());
    EXPECT_TRUE(upstream.valid());
    if (upstream.valid()) {
      EXPECT_EQ(readSettled(loop_, upstream.get(), text.size()), bytesOf(text));
    }
    return {std::move(client), std::move(upstream)};
  }
  // A request under `keys` gets the probe handling, counted as a wrong key.
  void expectRefused(std::span<const crypto::MasterKey> keys) {
    Fd target = listenLoopback();
    crypto::Aead2022StreamEncoder enc = encoder(keys, target);
    expectProbeHandling(encode(enc, "hello", loop_.unixSeconds()), worker_->stats().auth_failed,
                        CloseReason::AuthFailed, target);
  }

  crypto::MasterKey alice_ = keyOf(0x10);
  crypto::MasterKey bob_ = keyOf(0x40);
  crypto::MasterKey carol_ = keyOf(0x70);
};

TEST_P(ServerSessionIdentityTest, EachUserIsFoundByItsIdentityHeaderAndKeysTheResponse) {
  startWithUsers();
  Fd target = listenLoopback();
  for (const auto* who : {&alice_, &bob_}) {
    const std::string name = who == &alice_ ? "alice" : "bob";
    SCOPED_TRACE(name);
    const std::vector<crypto::MasterKey> keys = chain(*who);
    crypto::Aead2022StreamEncoder enc = encoder(keys, target);
    Fd client = connectLoopback(port_);
    ASSERT_TRUE(sendBytes(client.get(), encode(enc, "hello " + name, loop_.unixSeconds())));
    Fd upstream = acceptWithin(loop_, target.get());
    ASSERT_TRUE(upstream.valid());
    EXPECT_EQ(readSettled(loop_, upstream.get(), 6 + name.size()), bytesOf("hello " + name));
    ASSERT_TRUE(sendText(upstream.get(), "to " + name));
    // The response is keyed with the user's own key, not the iPSK.
    EXPECT_EQ(readResponse(client, *who, enc.salt(), 3 + name.size()), "to " + name);
    EXPECT_EQ(worker_->traffic(name).tcp_bytes_up, 6 + name.size());
  }
  EXPECT_EQ(salt_store_.size(), 2u);
  EXPECT_EQ(worker_->stats().auth_failed, 0u);
  EXPECT_EQ(worker_->traffic("default").tcp_bytes_up, 0u);
}

TEST_P(ServerSessionIdentityTest, UnknownIdentityGetsNoByteAndAFinAtTheDeadline) {
  startWithUsers();
  expectRefused(chain(keyOf(0x90)));  // nobody's key
  EXPECT_EQ(salt_store_.size(), 0u);
}

TEST_P(ServerSessionIdentityTest, TheIdentityKeyAsAUsersKeyGetsNothing) {
  // Every client of the port holds the iPSK: naming it as the user must not pass for "default".
  startWithUsers();
  expectRefused(chain(psk_));
}

TEST_P(ServerSessionIdentityTest, AClientWithoutIdentityHeaderGetsNothing) {
  // The iPSK alone (the -k user's single-PSK request): its fixed header is read as the EIH.
  startWithUsers();
  expectRefused(std::span<const crypto::MasterKey>(&psk_, 1));
}

TEST_P(ServerSessionIdentityTest, ADisabledUserGetsNothing) {
  startWithUsers();
  expectRefused(chain(carol_));
}

TEST_P(ServerSessionIdentityTest, ARotatedKeyCutsTheLiveSessionAndOnlyTheNewKeyConnects) {
  startWithUsers();
  Fd target = listenLoopback();
  const std::vector<crypto::MasterKey> old_keys = chain(alice_);
  auto [live, upstream] = expectRelayed(old_keys, target, "before");

  // Rotation: alice gets a new key in the next table; her live session ends, bob's stays.
  const crypto::MasterKey rotated = keyOf(0xA0);
  std::vector<RelayUser> users;
  users.push_back(user("default", psk_));
  users.push_back(user("alice", rotated));
  users.push_back(user("bob", bob_));
  worker_->setUsers(tableOf(std::move(users), 2));
  std::vector<uint8_t> at_client;
  ASSERT_TRUE(waitForEof(loop_, live.get(), &at_client));
  EXPECT_EQ(closed(CloseReason::Revoked), 1u);

  expectRefused(old_keys);
  expectRelayed(chain(rotated), target, "new key");
}

TEST_P(ServerSessionIdentityTest, LimitsAndQuotasApplyToTheIdentifiedUser) {
  std::vector<RelayUser> users;
  users.push_back(user("default", psk_));
  RelayUser alice = user("alice", alice_);
  alice.max_connections = 1;
  users.push_back(std::move(alice));
  RelayUser bob = user("bob", bob_);
  bob.quota_exceeded = true;
  users.push_back(std::move(bob));
  startWith(tableOf(std::move(users), 1));
  Fd target = listenLoopback();
  auto [first, first_upstream] = expectRelayed(chain(alice_), target, "first");
  // A second session of alice is identified by its header, then refused over her limit; bob
  // is refused over his quota. Neither reaches the target; both are counted under the user.
  for (const auto* key : {&alice_, &bob_}) {
    const std::vector<crypto::MasterKey> keys = chain(*key);
    crypto::Aead2022StreamEncoder enc = encoder(keys, target);
    Fd client = connectLoopback(port_);
    ASSERT_TRUE(sendBytes(client.get(), encode(enc, "over", loop_.unixSeconds())));
    std::vector<uint8_t> at_client;
    ASSERT_TRUE(waitForEof(loop_, client.get(), &at_client));
    EXPECT_TRUE(at_client.empty());
  }
  EXPECT_EQ(closed(CloseReason::OverLimit), 2u);
  EXPECT_EQ(worker_->sample().users.at("alice").refused_over_limit, 1u);
  EXPECT_EQ(worker_->sample().users.at("bob").refused_over_limit, 1u);
  EXPECT_FALSE(tryAccept(target.get()).valid());
  EXPECT_EQ(worker_->stats().auth_failed, 0u);
}

TEST_P(ServerSessionIdentityTest, AnExpiredUserIsIdentifiedByItsHeaderThenRefused) {
  std::vector<RelayUser> users;
  users.push_back(user("default", psk_));
  RelayUser alice = user("alice", alice_);
  alice.expired = true;
  users.push_back(std::move(alice));
  users.push_back(user("bob", bob_));
  startWith(tableOf(std::move(users), 1));
  Fd target = listenLoopback();
  crypto::Aead2022StreamEncoder enc = encoder(chain(alice_), target);
  Fd client = connectLoopback(port_);
  ASSERT_TRUE(sendBytes(client.get(), encode(enc, "late", loop_.unixSeconds())));
  std::vector<uint8_t> at_client;
  ASSERT_TRUE(waitForEof(loop_, client.get(), &at_client));
  EXPECT_TRUE(at_client.empty());
  EXPECT_FALSE(tryAccept(target.get()).valid());
  EXPECT_EQ(worker_->sample().users.at("alice").refused_expired, 1u);
  EXPECT_EQ(worker_->sample().users.at("alice").refused_over_limit, 0u);
  EXPECT_EQ(worker_->stats().auth_failed, 0u);
  expectRelayed(chain(bob_), target, "bob is not expired");
}

INSTANTIATE_TEST_SUITE_P(AesMethods, ServerSessionIdentityTest,
                         ::testing::Values("2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm"),
                         methodTestName);

}  // namespace
}  // namespace shadowrelay::relay::testing
