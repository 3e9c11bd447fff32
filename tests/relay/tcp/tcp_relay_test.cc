// SPDX-License-Identifier: Apache-2.0
// The TCP relay engine in one process: a `local` worker and a `server` worker on one loop, real
// loopback sockets, and targets on test threads. What the end-to-end tests (tests/e2e) cannot
// see from outside: the bound on parked bytes under backpressure, and the close reasons.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "crypto/salt_filter.h"
#include "dns/dns_cache.h"
#include "gtest/gtest.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/worker/worker.h"
#include "tests/testing/manual_clock.h"
#include "tests/testing/upstreams.h"

namespace shadowrelay::relay {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;

SocketAddress loopback(uint16_t port) { return *parseSocketAddress("127.0.0.1", port); }

// A blocking socket whose reads and writes give up after `timeout`.
int connectBlocking(uint16_t port, milliseconds timeout = milliseconds(5000)) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SocketAddress address = loopback(port);
  if (::connect(fd, address.get(), address.len) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

bool readExact(int fd, uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

bool writeAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// SOCKS5 CONNECT to 127.0.0.1:port through the local worker; the socket is ready for data.
int socksConnect(uint16_t local_port, uint16_t target_port) {
  int fd = connectBlocking(local_port);
  if (fd < 0) return -1;
  const uint8_t greeting[] = {5, 1, 0};
  const uint8_t request[] = {5, 1, 0, 1, 127, 0, 0, 1, static_cast<uint8_t>(target_port >> 8),
                             static_cast<uint8_t>(target_port & 0xff)};
  uint8_t reply[10];
  if (!writeAll(fd, greeting, sizeof(greeting)) || !readExact(fd, reply, 2) || reply[1] != 0 ||
      !writeAll(fd, request, sizeof(request)) || !readExact(fd, reply, 10) || reply[1] != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A listening socket on a free loopback port, for targets run on test threads.
struct TargetListener {
  TargetListener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SocketAddress address = loopback(0);
    ::bind(fd, address.get(), address.len);
    ::listen(fd, 16);
    port = localAddress(fd).port();
  }
  ~TargetListener() { ::close(fd); }
  int acceptOne() {
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int c = ::accept(fd, nullptr, nullptr);
    if (c >= 0) {
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return c;
  }
  int fd;
  uint16_t port;
};

class TcpRelayTest : public ::testing::TestWithParam<bool> {  // io_uring on/off
 protected:
  void SetUp() override {
    const crypto::MethodInfo* method = *crypto::findMethod("aes-128-gcm");
    for (RelayEnv* env : {&server_env_, &local_env_}) {
      env->credentials.method = method;
      env->credentials.provider = &crypto::opensslProvider();
      env->credentials.master = crypto::evpBytesToKey("test-password", method->key_size);
      env->salt_filter = &salt_filter_;
      env->dns_cache = &dns_cache_;
      env->idle_timeout = seconds(30);
      env->handshake_timeout = seconds(1);
      env->connect_timeout = seconds(3);
      env->io_uring = GetParam();
    }
    server_env_.config.role = Role::Server;
    server_env_.config.allow_private = true;
    local_env_.config.role = Role::Local;
  }

  void TearDown() override { stop(); }

  void start() {
    server_ = std::make_unique<Worker>(loop_, server_env_, 0);
    local_ = std::make_unique<Worker>(loop_, local_env_, 1);
    ASSERT_TRUE(server_->init().ok());
    ASSERT_TRUE(local_->init().ok());
    // The server's one user: the local's key.
    RelayUser user;
    user.name = "default";
    user.method = server_env_.credentials.method;
    user.provider = server_env_.credentials.provider;
    user.key = server_env_.credentials.master;
    std::vector<RelayUser> users;
    users.push_back(std::move(user));
    server_->setUsers(std::make_shared<const UserTable>(1, std::move(users), nullptr));
    ListenOptions options;
    options.reuse_port = false;
    server_->addListener(*listenTcp(loopback(0), options));
    server_port_ = server_->listenPortForTest();
    local_env_.config.server_hosts = {"127.0.0.1"};
    local_env_.config.server_port = server_port_;
    upstreams_ = relay::testing::singleUpstream(local_env_);
    local_->addListener(*listenTcp(loopback(0), options));
    local_port_ = local_->listenPortForTest();
    thread_ = std::thread([this] { loop_.run(); });
  }

  void stop() {
    if (!thread_.joinable()) return;
    loop_.post([this] {
      server_.reset();
      local_.reset();
      loop_.stop();
    });
    thread_.join();
  }

  template <typename Fn>
  auto onLoop(Fn fn) -> decltype(fn()) {
    std::promise<decltype(fn())> done;
    auto result = done.get_future();
    loop_.post([&] { done.set_value(fn()); });
    return result.get();
  }

  uint64_t serverClosed(CloseReason reason) {
    return onLoop([&] { return server_->stats().closed[static_cast<size_t>(reason)]; });
  }

  // Moves the loop's time on by `by` and returns once the loop has run a whole iteration at the
  // new time: every timer due by then has fired.
  void advanceClock(std::chrono::nanoseconds by) {
    onLoop([&] {
      clock_.advance(by);
      return 0;
    });
    onLoop([] { return 0; });  // posted after the advance: runs after the next timer pass
  }

  uint64_t authFailed() {
    return onLoop([&] { return server_->stats().auth_failed; });
  }

  crypto::SaltFilter salt_filter_{10'000};
  dns::DnsCache dns_cache_;
  RelayEnv server_env_;
  RelayEnv local_env_;
  // The loop's time: it moves only when a test calls advanceClock(), so the deadlines below are
  // met exactly, however slow the machine.
  shadowrelay::testing::ManualClock clock_;
  EventLoop loop_{EventLoopOptions{.time_source = &clock_}};
  std::unique_ptr<UpstreamBalancer> upstreams_;  // the local's; outlives the workers
  std::unique_ptr<Worker> server_;
  std::unique_ptr<Worker> local_;
  std::thread thread_;
  uint16_t server_port_ = 0;
  uint16_t local_port_ = 0;
};

uint8_t patternByte(size_t i) { return static_cast<uint8_t>((i * 7 + 3) % 251); }

// Polls `done` until it holds; false only if it never did within a bound meant for hangs, not
// for timing (the test fails then).
bool eventually(const std::function<bool()>& done) {
  const auto limit = Steady::now() + seconds(30);
  while (!done()) {
    if (Steady::now() >= limit) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

TEST_P(TcpRelayTest, SlowReaderParksAtMostOneReadPerDirection) {
  start();
  TargetListener target;
  constexpr size_t kTotal = 48u << 20;
  std::atomic<size_t> written{0};
  std::atomic<bool> stalled{false};
  std::thread writer([&] {
    int c = target.acceptOne();
    if (c < 0) return;
    uint8_t hello[2];
    // Read what the client sent first: closing with unread bytes would send an RST.
    if (!readExact(c, hello, sizeof(hello))) {
      ::close(c);
      return;
    }
    std::vector<uint8_t> block(64 << 10);
    for (size_t off = 0; off < kTotal; off += block.size()) {
      for (size_t i = 0; i < block.size(); ++i) block[i] = patternByte(off + i);
      // Non-blocking first, to tell the test when the relays have stopped taking bytes: the
      // socket then takes less than a block.
      const ssize_t w = ::send(c, block.data(), block.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      const size_t sent = w > 0 ? static_cast<size_t>(w) : 0;
      if (sent < block.size()) stalled = true;
      if (!writeAll(c, block.data() + sent, block.size() - sent)) break;
      written += block.size();
    }
    ::close(c);
  });
  int client = socksConnect(local_port_, target.port);
  ASSERT_GE(client, 0);
  const uint8_t hello[] = {'h', 'i'};
  ASSERT_TRUE(writeAll(client, hello, sizeof(hello)));
  // The client does not read: the kernel buffers fill, then the relays must stop reading, until
  // the target's sends block. The bound below holds at every instant; this is when it matters.
  EXPECT_TRUE(eventually([&] { return stalled.load(); }))
      << "the target never had to wait; written " << written.load();
  const size_t parked_server = onLoop([&] { return server_->bufferedBytes(); });
  const size_t parked_local = onLoop([&] { return local_->bufferedBytes(); });
  EXPECT_LT(written.load(), kTotal) << "the target was never slowed down";
  // Per direction: one read's worth of output plus one partial unit.
  constexpr size_t kBound = 2 * Worker::kScratchSize + 2 * 0x4100;
  EXPECT_LE(parked_server, kBound);
  EXPECT_LE(parked_local, kBound);
  // Now read everything and check every byte.
  std::vector<uint8_t> buf(1 << 16);
  size_t got = 0;
  bool ok = true;
  while (got < kTotal) {
    ssize_t r = ::recv(client, buf.data(), buf.size(), 0);
    if (r <= 0) break;
    for (ssize_t i = 0; i < r && ok; ++i) ok = buf[i] == patternByte(got + i);
    got += static_cast<size_t>(r);
  }
  writer.join();
  EXPECT_TRUE(ok) << "corrupted byte before offset " << got;
  EXPECT_EQ(got, kTotal);
  ::close(client);
}

TEST_P(TcpRelayTest, HalfCloseIsForwardedAndTheReplyStillArrives) {
  start();
  TargetListener target;
  std::thread peer([&] {
    int c = target.acceptOne();
    if (c < 0) return;
    uint8_t buf[4096];
    size_t total = 0;
    for (ssize_t r; (r = ::recv(c, buf, sizeof(buf), 0)) > 0;) total += static_cast<size_t>(r);
    const std::string reply = "read " + std::to_string(total);
    writeAll(c, reinterpret_cast<const uint8_t*>(reply.data()), reply.size());
    ::close(c);
  });
  int client = socksConnect(local_port_, target.port);
  ASSERT_GE(client, 0);
  std::vector<uint8_t> data(300'000, 0x5a);
  ASSERT_TRUE(writeAll(client, data.data(), data.size()));
  ::shutdown(client, SHUT_WR);
  std::string reply;
  char buf[64];
  for (ssize_t r; (r = ::recv(client, buf, sizeof(buf), 0)) > 0;) reply.append(buf, r);
  peer.join();
  EXPECT_EQ(reply, "read 300000");
  ::close(client);
  // Both directions ended with EOF: the server session finished as Done.
  EXPECT_TRUE(eventually([&] { return serverClosed(CloseReason::Done) > 0; }));
  EXPECT_EQ(serverClosed(CloseReason::Done), 1u);
}

// Nothing is relayed for the idle timeout: the server closes the session at that deadline on
// its clock, not a tick earlier, and the close reaches the client through the local as an EOF.
TEST_P(TcpRelayTest, IdleSessionsAreClosedAtTheirDeadline) {
  server_env_.idle_timeout = seconds(1);
  start();
  TargetListener target;
  std::promise<void> got_x;
  std::thread holder([&] {
    int c = target.acceptOne();
    if (c < 0) return;
    uint8_t buf[16];
    // Reads the 'x', then waits until the relay closes the connection.
    if (::recv(c, buf, sizeof(buf), 0) > 0) got_x.set_value();
    for (int i = 0; i < 4 && ::recv(c, buf, sizeof(buf), 0) > 0; ++i) {
    }
    ::close(c);
  });
  int client = socksConnect(local_port_, target.port);
  ASSERT_GE(client, 0);
  const uint8_t hello[] = {'x'};
  ASSERT_TRUE(writeAll(client, hello, 1));
  // Every byte so far moved at the clock's one reading: the session's last activity.
  if (got_x.get_future().wait_for(seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "the 'x' never reached the target";
    ::close(client);
    holder.join();
    return;
  }
  uint8_t buf[16];
  advanceClock(seconds(1) - milliseconds(1));
  EXPECT_EQ(serverClosed(CloseReason::IdleTimeout), 0u) << "closed before the idle timeout";
  EXPECT_EQ(::recv(client, buf, sizeof(buf), MSG_DONTWAIT), -1) << "the client saw a close";
  advanceClock(milliseconds(1));
  EXPECT_EQ(serverClosed(CloseReason::IdleTimeout), 1u);
  EXPECT_EQ(::recv(client, buf, sizeof(buf), 0), 0);  // blocking, 5 s SO_RCVTIMEO
  holder.join();
  ::close(client);
}

// A wrong key is counted at once, then the connection is read and discarded until the
// handshake deadline (1 s from accept), which ends it with a FIN, not an RST.
TEST_P(TcpRelayTest, WrongKeyIsDrainedUntilTheDeadlineThenFin) {
  start();
  int probe = connectBlocking(server_port_);
  ASSERT_GE(probe, 0);
  std::vector<uint8_t> junk(300);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = patternByte(i);
  ASSERT_TRUE(writeAll(probe, junk.data(), junk.size()));
  ASSERT_TRUE(eventually([&] { return authFailed() > 0; }));
  ASSERT_EQ(authFailed(), 1u);
  advanceClock(seconds(1) - milliseconds(1));
  // Still draining: more bytes are taken without a word.
  ASSERT_TRUE(writeAll(probe, junk.data(), junk.size()));
  uint8_t buf[16];
  errno = 0;
  EXPECT_EQ(::recv(probe, buf, sizeof(buf), MSG_DONTWAIT), -1) << "closed before the deadline";
  EXPECT_EQ(errno, EAGAIN);
  advanceClock(milliseconds(1));
  errno = 0;
  const ssize_t r = ::recv(probe, buf, sizeof(buf), 0);
  EXPECT_EQ(r, 0) << "expected a FIN, got " << r << " errno " << std::strerror(errno);
  EXPECT_EQ(authFailed(), 1u);
  ::close(probe);
}

TEST_P(TcpRelayTest, LoopbackTargetRefusedUnlessAllowed) {
  server_env_.config.allow_private = false;
  start();
  TargetListener target;
  int client = socksConnect(local_port_, target.port);
  ASSERT_GE(client, 0);
  const uint8_t hello[] = {'x'};
  ASSERT_TRUE(writeAll(client, hello, 1));
  uint8_t buf[16];
  EXPECT_LE(::recv(client, buf, sizeof(buf), 0), 0);
  ::close(client);
  EXPECT_TRUE(eventually([&] { return serverClosed(CloseReason::TargetRefused) > 0; }));
  EXPECT_EQ(serverClosed(CloseReason::TargetRefused), 1u);
}

TEST_P(TcpRelayTest, DeletedUsersLeaveTheSampleAndTheirCountersAreRetired) {
  start();
  TargetListener target;
  std::thread echo([&] {
    int c = target.acceptOne();
    if (c < 0) return;
    uint8_t hello[2];
    const uint8_t yo[] = {'y', 'o', '!'};
    if (readExact(c, hello, sizeof(hello))) writeAll(c, yo, sizeof(yo));
    ::close(c);
  });
  int client = socksConnect(local_port_, target.port);
  ASSERT_GE(client, 0);
  const uint8_t hi[] = {'h', 'i'};
  ASSERT_TRUE(writeAll(client, hi, sizeof(hi)));
  uint8_t reply[3];
  ASSERT_TRUE(readExact(client, reply, sizeof(reply)));
  ::close(client);
  echo.join();
  EXPECT_TRUE(eventually([&] {
    return serverClosed(CloseReason::Done) + serverClosed(CloseReason::ClientClosed) > 0;
  }));
  const UserTraffic before = onLoop([&] { return server_->sample().users.at("default"); });
  EXPECT_EQ(before.tcp_connections, 1u);
  EXPECT_EQ(before.tcp_bytes_up, 2u);
  EXPECT_EQ(before.tcp_bytes_down, 3u);

  // A table without "default": its entry leaves the sample, its counters go to retired_users.
  RelayUser other;
  other.name = "other";
  other.method = server_env_.credentials.method;
  other.provider = server_env_.credentials.provider;
  other.key = crypto::evpBytesToKey("another-password", other.method->key_size);
  std::vector<RelayUser> users;
  users.push_back(std::move(other));
  auto table = std::make_shared<const UserTable>(2, std::move(users), nullptr);
  const auto [present, retired] = onLoop([&] {
    server_->setUsers(table);
    return std::make_pair(server_->sample().users.contains("default"),
                          server_->sample().retired_users);
  });
  EXPECT_FALSE(present);
  EXPECT_EQ(retired.tcp_connections, 1u);
  EXPECT_EQ(retired.tcp_bytes_up, 2u);
  EXPECT_EQ(retired.tcp_bytes_down, 3u);
  // Sessions without a user ("") are never retired.
  EXPECT_TRUE(onLoop([&] { return server_->sample().users.contains(""); }));
}

INSTANTIATE_TEST_SUITE_P(BatchedIo, TcpRelayTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "uring" : "plain"; });

}  // namespace
}  // namespace shadowrelay::relay
