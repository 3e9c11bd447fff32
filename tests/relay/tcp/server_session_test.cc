// SPDX-License-Identifier: Apache-2.0
// ServerSession on a real Worker and EventLoop driven on the test thread: a reference SIP004
// client (tests/testing/reference_client.h) on a loopback socket, loopback targets, and the
// worker's counters. What each handshake outcome sends back, and how it is counted.
#include "relay/tcp/server_session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/method.h"
#include "crypto/salt_filter.h"
#include "dns/dns_cache.h"
#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/tcp_stats.h"
#include "relay/users/device_ids.h"
#include "relay/worker/worker.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/reference_client.h"
#include "tests/testing/run_loop.h"
#include "tests/testing/test_users.h"

namespace shadowrelay::relay {
namespace {

using shadowrelay::testing::bytesOf;
using std::chrono::seconds;
using testing::acceptWithin;
using testing::addressBytes;
using testing::chunkWireSize;
using testing::concat;
using testing::connectLoopback;
using testing::connectLoopbackFrom;
using testing::kSettleIterations;
using testing::listenLoopback;
using testing::loopbackTarget;
using testing::makeTable;
using testing::makeUser;
using testing::portOf;
using testing::readAtLeast;
using testing::readAvailable;
using testing::readSettled;
using testing::ReferenceStream;
using testing::runIterations;
using testing::runUntil;
using testing::sendBytes;
using testing::sendText;
using testing::tryAccept;
using testing::waitForEof;

class ServerSessionTest : public ::testing::Test {
 protected:
  ServerSessionTest() {
    env_.config.role = Role::Server;
    env_.config.allow_private = true;        // the targets are on loopback
    env_.config.nameserver = "127.0.0.1:1";  // never asked: every target is a literal
    env_.salt_filter = &salt_filter_;
    env_.dns_cache = &dns_cache_;
    env_.handshake_timeout = seconds(1);
    env_.connect_timeout = seconds(3);
    env_.io_uring = false;
  }

  void start(std::vector<RelayUser> users) {
    worker_ = std::make_unique<Worker>(loop_, env_, 0);
    ASSERT_TRUE(worker_->init().ok());
    table_ = makeTable(std::move(users));
    worker_->setUsers(table_);
    worker_->addListener(listenLoopback());
    port_ = worker_->listenPortForTest();
    ASSERT_NE(port_, 0);
  }

  const RelayUser& user(const std::string& name) { return *table_->find(name); }
  ReferenceStream streamOf(const RelayUser& who) {
    return ReferenceStream(*who.method, *who.provider, who.key.bytes());
  }
  // What a client sends first: the address header of the loopback target behind `listener`,
  // then `data`, sealed by `stream`.
  static std::vector<uint8_t> request(ReferenceStream& stream, const Fd& listener,
                                      const std::string& data) {
    return stream.seal(concat(addressBytes(loopbackTarget(portOf(listener.get()))), bytesOf(data)));
  }
  // The wire size of a stream's first chunk of `payload` bytes (all users here: aes-128-gcm).
  static size_t firstChunk(size_t payload) {
    return chunkWireSize(**crypto::findMethod("aes-128-gcm"), payload, /*first=*/true);
  }
  uint64_t closed(CloseReason reason) {
    return worker_->stats().closed[static_cast<size_t>(reason)];
  }

  crypto::SaltFilter salt_filter_{10'000};
  dns::DnsCache dns_cache_;
  RelayEnv env_;
  EventLoop loop_;
  UserTablePtr table_;
  std::unique_ptr<Worker> worker_;
  uint16_t port_ = 0;
};

TEST_F(ServerSessionTest, RelaysBothWaysForAReferenceClient) {
  start({makeUser("alice")});
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  ReferenceStream stream = streamOf(user("alice"));
  const std::vector<uint8_t> hello = request(stream, target, "hello");
  ASSERT_EQ(hello.size(), firstChunk(7 + 5));
  ASSERT_TRUE(sendBytes(client.get(), hello));

  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());
  std::vector<uint8_t> at_target;
  ASSERT_TRUE(readAtLeast(loop_, upstream.get(), 5, &at_target));
  ASSERT_TRUE(sendText(upstream.get(), "world!"));
  std::vector<uint8_t> at_client;
  // The reply: the server's salt, one length header and "world!" sealed.
  ASSERT_TRUE(readAtLeast(loop_, client.get(), firstChunk(6), &at_client));
  runIterations(loop_, kSettleIterations);
  readAvailable(upstream.get(), &at_target);
  readAvailable(client.get(), &at_client);

  EXPECT_EQ(at_target, bytesOf("hello"));  // the address header is not forwarded
  ASSERT_EQ(at_client.size(), firstChunk(6));
  ASSERT_TRUE(stream.open(at_client));
  EXPECT_EQ(stream.openedText(), "world!");
  const TcpStats& stats = worker_->stats();
  EXPECT_EQ(stats.accepted, 1u);
  EXPECT_EQ(stats.active, 1u);
  EXPECT_EQ(stats.bytes_from_clients, hello.size());
  EXPECT_EQ(stats.bytes_to_remotes, 5u);
  EXPECT_EQ(stats.bytes_from_remotes, 6u);
  EXPECT_EQ(stats.bytes_to_clients, at_client.size());
  const UserTraffic& traffic = worker_->sample().users.at("alice");
  EXPECT_EQ(traffic.tcp_connections, 1u);
  EXPECT_EQ(traffic.tcp_bytes_up, 5u);
  EXPECT_EQ(traffic.tcp_bytes_down, 6u);

  // EOF each way: the client's reaches the target, the target's ends the session.
  ::shutdown(client.get(), SHUT_WR);
  ASSERT_TRUE(waitForEof(loop_, upstream.get(), &at_target));
  upstream.reset();
  ASSERT_TRUE(waitForEof(loop_, client.get(), &at_client));
  EXPECT_TRUE(runUntil(loop_, [&] { return worker_->sessionCount() == 0; }));
  EXPECT_EQ(closed(CloseReason::Done), 1u);
  EXPECT_EQ(worker_->stats().active, 0u);
}

TEST_F(ServerSessionTest, ParsesAnAddressHeaderSplitAcrossChunks) {
  start({makeUser("alice")});
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  ReferenceStream stream = streamOf(user("alice"));
  stream.setMaxPayload(3);  // 7 header bytes in three chunks, the data in two more
  const std::vector<uint8_t> plain =
      concat(addressBytes(loopbackTarget(portOf(target.get()))), bytesOf("hello"));
  // One chunk per write, the loop running in between: every read ends inside the header.
  for (size_t off = 0; off < plain.size(); off += 3) {
    const size_t n = std::min<size_t>(3, plain.size() - off);
    ASSERT_TRUE(sendBytes(client.get(), stream.seal({plain.data() + off, n})));
    runIterations(loop_, 2);
  }
  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());
  EXPECT_EQ(readSettled(loop_, upstream.get(), 5), bytesOf("hello"));
  EXPECT_EQ(worker_->stats().bad_addresses, 0u);
}

TEST_F(ServerSessionTest, IdentifiesTheUserAmongSeveralOnThePort) {
  start({makeUser("alice"), makeUser("bob", "chacha20-ietf-poly1305"), makeUser("carol")});
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  ReferenceStream stream = streamOf(user("bob"));
  ASSERT_TRUE(sendBytes(client.get(), request(stream, target, "hi")));
  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());
  std::vector<uint8_t> at_target;
  ASSERT_TRUE(readAtLeast(loop_, upstream.get(), 2, &at_target));
  EXPECT_EQ(at_target, bytesOf("hi"));
  const auto& users = worker_->sample().users;
  ASSERT_TRUE(users.contains("bob"));
  EXPECT_EQ(users.at("bob").tcp_connections, 1u);
  EXPECT_EQ(users.at("bob").tcp_bytes_up, 2u);
  EXPECT_FALSE(users.contains("alice"));
  EXPECT_FALSE(users.contains("carol"));
}

// Issue 15 §1: a client whose first bytes come one at a time costs each short-salt key one
// trial, not one per read.
TEST_F(ServerSessionTest, AStartInOneBytePiecesTriesEachKeyOnce) {
  std::vector<RelayUser> users;
  for (int i = 0; i < 20; ++i) users.push_back(makeUser("u" + std::to_string(10 + i)));
  users.push_back(makeUser("zed", "aes-256-gcm"));  // 32-byte salt: needs 50 bytes
  start(std::move(users));
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  ReferenceStream stream = streamOf(user("zed"));
  const std::vector<uint8_t> hello = request(stream, target, "hi");
  const uint64_t before = worker_->users().trials();
  // Bytes 34..49 each arrive alone: the 20 aes-128-gcm keys could be tried on every read.
  for (size_t i = 0; i < 50; ++i) {
    ASSERT_TRUE(sendBytes(client.get(), {hello.data() + i, 1}));
    runIterations(loop_, 3);
  }
  ASSERT_TRUE(sendBytes(client.get(), {hello.data() + 50, hello.size() - 50}));
  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());
  EXPECT_EQ(readSettled(loop_, upstream.get(), 2), bytesOf("hi"));
  EXPECT_EQ(worker_->users().trials() - before, 21u);  // 20 short-salt keys once, then zed's
}

// Issue 15 §4: past the per-worker and per-source bounds on unauthenticated connections a new
// one is closed at accept without a byte; an authenticated session frees its slot.
TEST_F(ServerSessionTest, UnauthenticatedConnectionsAreBoundedPerWorkerAndPerSource) {
  SourceLimiter sources(2);
  env_.source_limiter = &sources;
  env_.config.max_preauth_per_worker = 3;
  start({makeUser("alice")});
  Fd target = listenLoopback();
  Fd idle1 = connectLoopback(port_);
  Fd idle2 = connectLoopback(port_);
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->preauthCount() == 2; }));
  // A third from 127.0.0.1: over the source's bound; closed, nothing sent.
  Fd over_source = connectLoopback(port_);
  std::vector<uint8_t> got;
  ASSERT_TRUE(waitForEof(loop_, over_source.get(), &got));
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(worker_->stats().refused_source, 1u);
  EXPECT_EQ(worker_->sessionCount(), 2u);

  // One authenticates: its slot (and its source's) is given back ...
  ReferenceStream stream = streamOf(user("alice"));
  ASSERT_TRUE(sendBytes(idle1.get(), request(stream, target, "hi")));
  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());
  EXPECT_EQ(worker_->preauthCount(), 1u);
  EXPECT_EQ(sources.countForTest(localAddress(idle2.get())), 1u);
  // ... so one more from the same source gets in; then the worker's bound (3) is what refuses,
  // for another source too.
  Fd idle3 = connectLoopback(port_);
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->preauthCount() == 2; }));
  Fd other = Fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl(0x7F000002);  // 127.0.0.2
  ASSERT_EQ(::bind(other.get(), reinterpret_cast<sockaddr*>(&from), sizeof(from)), 0);
  sockaddr_in to = from;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port_);
  ASSERT_EQ(::connect(other.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->preauthCount() == 3; }));
  Fd over_worker = connectLoopback(port_);
  ASSERT_TRUE(waitForEof(loop_, over_worker.get(), &got));
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(worker_->stats().refused_worker, 1u);
  EXPECT_EQ(worker_->stats().refused_source, 1u);

  // Closing gives the slots back.
  idle2.reset();
  idle3.reset();
  other.reset();
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->preauthCount() == 0; }));
  EXPECT_EQ(sources.countForTest(localAddress(idle1.get())), 0u);
  worker_->closeAllSessions();
  runIterations(loop_, kSettleIterations);
}

// A burst of connects waiting in the listen queue is taken in one readiness event, not 64 at a
// time (a busy loop gives the listener a turn about once per pass over its sessions).
TEST_F(ServerSessionTest, ABurstOfConnectsIsTakenInOneReadinessEvent) {
  ASSERT_GE(raiseFileLimit(), 1000u);
  start({makeUser("alice")});
  constexpr size_t kBurst = 300;
  std::vector<Fd> clients;
  for (size_t i = 0; i < kBurst; ++i) clients.push_back(connectLoopback(port_));
  runIterations(loop_, 1);
  EXPECT_EQ(worker_->stats().accepted, kBurst);
  clients.clear();
  worker_->closeAllSessions();
  runIterations(loop_, kSettleIterations);
}

TEST_F(ServerSessionTest, WrongKeyGetsNoByteAndAFinAtTheHandshakeDeadline) {
  start({makeUser("alice")});
  Fd target = listenLoopback();
  const RelayUser mallory = makeUser("mallory");
  ReferenceStream stream = streamOf(mallory);
  const auto started = Clock::now();
  Fd client = connectLoopback(port_);
  ASSERT_TRUE(sendBytes(client.get(), request(stream, target, "hello")));
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->stats().auth_failed == 1; }));

  // Rejected, but the client hears nothing: the connection stays open, and what it sends
  // meanwhile is read and dropped.
  std::vector<uint8_t> at_client;
  runIterations(loop_, kSettleIterations);
  EXPECT_TRUE(readAvailable(client.get(), &at_client));
  ASSERT_TRUE(sendBytes(client.get(), std::vector<uint8_t>(300, 0x41)));

  // Then the FIN, not before the deadline counted from accept.
  ASSERT_TRUE(waitForEof(loop_, client.get(), &at_client));
  EXPECT_GE(Clock::now() - started, env_.handshake_timeout);
  EXPECT_TRUE(at_client.empty()) << at_client.size() << " bytes sent back";
  EXPECT_FALSE(tryAccept(target.get()).valid());  // no connect was made

  // The client closes in turn; the session ends as the auth failure it was.
  client.reset();
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->sessionCount() == 0; }));
  EXPECT_EQ(closed(CloseReason::AuthFailed), 1u);
  EXPECT_EQ(worker_->stats().bytes_to_clients, 0u);
  EXPECT_EQ(worker_->stats().bytes_to_remotes, 0u);
  EXPECT_EQ(worker_->stats().bytes_from_clients, firstChunk(7 + 5) + 300);
}

TEST_F(ServerSessionTest, BadAddressHeaderIsCountedAndClosed) {
  start({makeUser("alice")});
  Fd client = connectLoopback(port_);
  ReferenceStream stream = streamOf(user("alice"));
  // ATYP 0x05 does not exist.
  const std::vector<uint8_t> bad = {0x05, 127, 0, 0, 1, 0x1F, 0x90, 'x'};
  ASSERT_TRUE(sendBytes(client.get(), stream.seal(bad)));
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->stats().bad_addresses == 1; }));
  std::vector<uint8_t> at_client;
  runIterations(loop_, kSettleIterations);
  EXPECT_TRUE(readAvailable(client.get(), &at_client));  // still open, drained
  EXPECT_EQ(worker_->sessionCount(), 1u);
  // The client gives up before the deadline: the session closes at once.
  client.reset();
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->sessionCount() == 0; }));
  EXPECT_EQ(closed(CloseReason::BadAddress), 1u);
  EXPECT_EQ(worker_->stats().auth_failed, 0u);
  EXPECT_TRUE(at_client.empty());
}

TEST_F(ServerSessionTest, PrivateTargetIsRefusedWithoutAllowPrivate) {
  env_.config.allow_private = false;
  start({makeUser("alice")});
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  ReferenceStream stream = streamOf(user("alice"));
  ASSERT_TRUE(sendBytes(client.get(), request(stream, target, "hello")));
  std::vector<uint8_t> at_client;
  ASSERT_TRUE(waitForEof(loop_, client.get(), &at_client));
  EXPECT_TRUE(at_client.empty());
  EXPECT_EQ(closed(CloseReason::TargetRefused), 1u);
  EXPECT_FALSE(tryAccept(target.get()).valid());
  EXPECT_EQ(worker_->stats().bytes_to_remotes, 0u);
}

TEST_F(ServerSessionTest, ReplayedSaltIsRejected) {
  start({makeUser("alice")});
  Fd target = listenLoopback();
  const std::vector<uint8_t> salt(16, 0x5A);
  const std::vector<uint8_t> plain =
      concat(addressBytes(loopbackTarget(portOf(target.get()))), bytesOf("once"));
  const RelayUser& alice = user("alice");
  ReferenceStream first(*alice.method, *alice.provider, alice.key.bytes(), salt);
  ReferenceStream replay(*alice.method, *alice.provider, alice.key.bytes(), salt);
  const std::vector<uint8_t> wire = first.seal(plain);
  ASSERT_EQ(replay.seal(plain), wire);

  Fd client1 = connectLoopback(port_);
  ASSERT_TRUE(sendBytes(client1.get(), wire));
  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());
  Fd client2 = connectLoopback(port_);
  ASSERT_TRUE(sendBytes(client2.get(), wire));
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->stats().replayed_salts == 1; }));
  runIterations(loop_, kSettleIterations);
  EXPECT_FALSE(tryAccept(target.get()).valid());  // one connect only
  client2.reset();
  ASSERT_TRUE(runUntil(loop_, [&] { return closed(CloseReason::ReplayedSalt) == 1; }));
  EXPECT_EQ(worker_->stats().auth_failed, 0u);
}

TEST_F(ServerSessionTest, ExpiredUserIsIdentifiedThenRefusedAndCountedAsExpired) {
  RelayUser expired = makeUser("alice");
  expired.expired = true;
  start({std::move(expired)});
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  ReferenceStream stream = streamOf(user("alice"));
  ASSERT_TRUE(sendBytes(client.get(), request(stream, target, "late")));
  std::vector<uint8_t> at_client;
  ASSERT_TRUE(waitForEof(loop_, client.get(), &at_client));
  EXPECT_TRUE(at_client.empty());
  EXPECT_FALSE(tryAccept(target.get()).valid());
  EXPECT_EQ(worker_->sample().users.at("alice").refused_expired, 1u);
  EXPECT_EQ(worker_->sample().users.at("alice").refused_over_limit, 0u);
  EXPECT_EQ(worker_->stats().auth_failed, 0u);
  EXPECT_EQ(user("alice").live->tcp_sessions.load(), 0u);
}

TEST_F(ServerSessionTest, UserAtMaxConnectionsIsRefusedAndCounted) {
  RelayUser limited = makeUser("alice");
  limited.max_connections = 1;
  start({std::move(limited)});
  Fd target = listenLoopback();
  const auto open = [&](const char* data) {
    Fd client = connectLoopback(port_);
    ReferenceStream stream = streamOf(user("alice"));
    EXPECT_TRUE(sendBytes(client.get(), request(stream, target, data)));
    return client;
  };

  Fd first = open("1");
  Fd first_upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(first_upstream.valid());
  EXPECT_EQ(user("alice").live->tcp_sessions.load(), 1u);

  Fd second = open("2");
  std::vector<uint8_t> at_second;
  ASSERT_TRUE(waitForEof(loop_, second.get(), &at_second));
  EXPECT_TRUE(at_second.empty());
  EXPECT_EQ(closed(CloseReason::OverLimit), 1u);
  EXPECT_EQ(worker_->sample().users.at("alice").refused_over_limit, 1u);
  EXPECT_FALSE(tryAccept(target.get()).valid());
  EXPECT_EQ(user("alice").live->tcp_sessions.load(), 1u);

  // The first session still relays; once it ends, a new one is admitted.
  std::vector<uint8_t> at_target;
  ASSERT_TRUE(readAtLeast(loop_, first_upstream.get(), 1, &at_target));
  EXPECT_EQ(at_target, bytesOf("1"));
  first.reset();
  first_upstream.reset();
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->sessionCount() == 0; }));
  EXPECT_EQ(user("alice").live->tcp_sessions.load(), 0u);
  Fd third = open("3");
  Fd third_upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(third_upstream.valid());
  EXPECT_EQ(closed(CloseReason::OverLimit), 1u);
}

TEST_F(ServerSessionTest, NewDeviceBeyondMaxDevicesIsRefusedAndCounted) {
  RelayUser limited = makeUser("alice");
  limited.max_devices = 1;
  limited.device_window = std::chrono::seconds(0);  // a device counts while it is connected
  start({std::move(limited)});
  Fd target = listenLoopback();
  const auto open = [&](const char* source, const char* data) {
    Fd client = connectLoopbackFrom(source, port_);
    ReferenceStream stream = streamOf(user("alice"));
    EXPECT_TRUE(sendBytes(client.get(), request(stream, target, data)));
    return client;
  };

  Fd first = open("127.0.0.2", "1");
  Fd first_upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(first_upstream.valid());
  // Another session of the same device is no new device.
  Fd again = open("127.0.0.2", "2");
  Fd again_upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(again_upstream.valid());
  EXPECT_EQ(user("alice").live->devices->count(std::chrono::seconds(0)), 1u);

  Fd other = open("127.0.0.3", "3");
  std::vector<uint8_t> at_other;
  ASSERT_TRUE(waitForEof(loop_, other.get(), &at_other));
  EXPECT_TRUE(at_other.empty());
  EXPECT_EQ(closed(CloseReason::OverLimit), 1u);
  EXPECT_EQ(worker_->sample().users.at("alice").refused_over_devices, 1u);
  EXPECT_EQ(worker_->sample().users.at("alice").refused_over_limit, 0u);
  EXPECT_FALSE(tryAccept(target.get()).valid());

  // The counted device still relays; once all its sessions ended, the other one is admitted.
  std::vector<uint8_t> at_target;
  ASSERT_TRUE(readAtLeast(loop_, first_upstream.get(), 1, &at_target));
  EXPECT_EQ(at_target, bytesOf("1"));
  first.reset();
  again.reset();
  first_upstream.reset();
  again_upstream.reset();
  ASSERT_TRUE(runUntil(loop_, [&] { return worker_->sessionCount() == 0; }));
  EXPECT_EQ(user("alice").live->devices->count(std::chrono::seconds(0)), 0u);
  Fd third = open("127.0.0.3", "4");
  Fd third_upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(third_upstream.valid());
  EXPECT_EQ(closed(CloseReason::OverLimit), 1u);
}

// Issue 19 §2: with an etcd store the other replicas' sessions and devices (UserLive, set by the
// store's thread) count against the limits at session start, with this server's.
TEST_F(ServerSessionTest, OtherReplicasSessionsAndDevicesCountAgainstTheLimits) {
  RelayUser limited = makeUser("alice");
  limited.max_connections = 2;
  limited.max_devices = 2;
  limited.device_window = std::chrono::seconds(0);
  start({std::move(limited)});
  const RelayUser& alice = user("alice");
  const DeviceIdsPtr ids = DeviceIds::fromSecret("cluster");
  alice.live->remote_tcp_sessions = 1;
  // Two devices elsewhere (one of them 127.0.0.2), and one session.
  const std::string here(std::string("\x7f\x00\x00\x02", 4));
  alice.live->devices->setRemote(ids, {ids->id(here), ids->id(std::string("\x0a\x00\x00\x09", 4))});
  Fd target = listenLoopback();
  const auto open = [&](const char* source, const char* data) {
    Fd client = connectLoopbackFrom(source, port_);
    ReferenceStream stream = streamOf(alice);
    EXPECT_TRUE(sendBytes(client.get(), request(stream, target, data)));
    return client;
  };
  const auto refused = [&](Fd client) {
    std::vector<uint8_t> got;
    EXPECT_TRUE(waitForEof(loop_, client.get(), &got));
    EXPECT_TRUE(got.empty());
  };

  // 127.0.0.3 would be a third device of the cluster: refused.
  refused(open("127.0.0.3", "1"));
  EXPECT_EQ(worker_->sample().users.at("alice").refused_over_devices, 1u);
  // 127.0.0.2 is counted elsewhere already: admitted (1 session here + 1 elsewhere).
  Fd first = open("127.0.0.2", "2");
  Fd first_upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(first_upstream.valid());
  // A second session here would be the cluster's third: refused over max_connections.
  refused(open("127.0.0.2", "3"));
  EXPECT_EQ(worker_->sample().users.at("alice").refused_over_limit, 1u);
  EXPECT_FALSE(tryAccept(target.get()).valid());
  // The other replica's session and its other device ended: both are admitted now.
  alice.live->remote_tcp_sessions = 0;
  alice.live->devices->setRemote(ids, {ids->id(here)});
  Fd second = open("127.0.0.3", "4");
  Fd second_upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(second_upstream.valid());
  EXPECT_EQ(alice.live->tcp_sessions.load(), 2u);
  EXPECT_EQ(closed(CloseReason::OverLimit), 2u);
}

// bytes_per_second (issue 18 §3): the download is read from the target no faster than the rate
// (one burst of 100 ms of it at first), nothing is lost, and the wait is counted for the user.
TEST_F(ServerSessionTest, AUserOverItsRateIsReadSlowlyAndNothingIsLost) {
  constexpr uint64_t kRate = 200'000;  // bytes/s: a burst of 20000 bytes
  RelayUser limited = makeUser("alice");
  limited.bytes_per_second = kRate;
  start({std::move(limited)});
  Fd target = listenLoopback();
  Fd client = connectLoopback(port_);
  ReferenceStream stream = streamOf(user("alice"));
  ASSERT_TRUE(sendBytes(client.get(), request(stream, target, "go")));
  Fd upstream = acceptWithin(loop_, target.get());
  ASSERT_TRUE(upstream.valid());

  std::vector<uint8_t> download(60'000);
  for (size_t i = 0; i < download.size(); ++i) download[i] = static_cast<uint8_t>(i * 7 + 3);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(sendBytes(upstream.get(), download));
  const UserTraffic& traffic = worker_->sample().users.at("alice");
  // At once: the burst, not the whole download (the socket holds all of it).
  ASSERT_TRUE(runUntil(loop_, [&] { return traffic.tcp_bytes_down > 0; }));
  EXPECT_LE(traffic.tcp_bytes_down, kRate / 10 + 1);

  // Then reads of half a burst (10000 bytes) every 50 ms, not a few bytes at every iteration.
  std::vector<uint8_t> at_client;
  uint64_t last = traffic.tcp_bytes_down;
  size_t reads = 0;
  ASSERT_TRUE(runUntil(loop_, [&] {
    readAvailable(client.get(), &at_client);
    if (traffic.tcp_bytes_down != last) {
      ++reads;
      last = traffic.tcp_bytes_down;
    }
    return traffic.tcp_bytes_down == download.size();
  }));
  EXPECT_LE(reads, 6u);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  // 40000 bytes beyond the burst at 200000 bytes/s: 0.2 s at least (more on a busy machine).
  EXPECT_GE(seconds, 0.19);
  EXPECT_LT(seconds, 3.0);
  runIterations(loop_, kSettleIterations);
  readAvailable(client.get(), &at_client);
  ASSERT_TRUE(stream.open(at_client));
  EXPECT_EQ(stream.opened(), download);
  // The upload side never waited (2 bytes), and the waits add up to about the transfer's time.
  EXPECT_EQ(traffic.rate_limited_nanos[kRateUp], 0u);
  EXPECT_GE(traffic.rate_limited_nanos[kRateDown], 150'000'000u);
  EXPECT_LE(traffic.rate_limited_nanos[kRateDown], static_cast<uint64_t>(seconds * 1e9) + 1);
}

}  // namespace
}  // namespace shadowrelay::relay
