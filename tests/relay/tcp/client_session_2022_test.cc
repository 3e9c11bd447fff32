// SPDX-License-Identifier: Apache-2.0
// ClientSession (tunnel front) with a Shadowsocks 2022 method (PROTOCOL.md §2.4) on a real
// Worker: the server is a loopback listener answered with the crypto layer's 2022 request
// decoder and response encoder. The request headers leave with the first data (or padded after
// the first-data wait); a response of another salt, a stale one or a reflected request ends the
// session without a byte to the application.
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead2022_stream.h"
#include "crypto/identity_header.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "dns/dns_cache.h"
#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/tcp_stats.h"
#include "relay/tcp/client_session.h"
#include "relay/worker/worker.h"
#include "tests/relay/tcp/client_worker.h"
#include "tests/testing/hex.h"
#include "tests/testing/loopback.h"
#include "tests/testing/run_loop.h"

// In the tests' namespace: the loopback and loop helpers unqualified.
namespace shadowrelay::relay::testing {
namespace {

using shadowrelay::testing::bytesOf;
using std::chrono::milliseconds;
using std::chrono::seconds;

const crypto::SocksAddress kTarget = crypto::SocksAddress::ipv4({10, 9, 8, 7}, 443);

class ClientSession2022Test : public ::testing::TestWithParam<const char*> {
 protected:
  ClientSession2022Test() {
    const crypto::MethodInfo* method = *crypto::findAnyMethod(GetParam());
    std::vector<uint8_t> psk(method->key_size);
    for (size_t i = 0; i < psk.size(); ++i) psk[i] = static_cast<uint8_t>(3 * i + 1);
    env_.credentials.method = method;
    env_.credentials.provider = &crypto::opensslProvider();
    env_.credentials.master = crypto::MasterKey(psk);
    env_.config.role = Role::Tunnel;
    env_.tunnel_target = kTarget;
    env_.config.nameserver = "127.0.0.1:1";
    env_.salt_filter = nullptr;  // the Bloom filter is never used for 2022: a use would crash
    env_.dns_cache = &dns_cache_;
    env_.handshake_timeout = seconds(1);
    env_.connect_timeout = seconds(3);
    env_.first_data_wait = milliseconds(2000);
    env_.io_uring = false;
  }

  void start() {
    ASSERT_NO_FATAL_FAILURE(startClientWorker(loop_, env_, server_, &upstreams_, &worker_, &port_));
  }

  const crypto::MethodInfo& method() const { return *env_.credentials.method; }
  crypto::Aead2022StreamDecoder requestDecoder() const {
    return crypto::Aead2022StreamDecoder::request(method(), crypto::opensslProvider(),
                                                  env_.credentials.master.bytes());
  }
  // The server reads what the session sent until its headers and `payload` bytes opened: the
  // payload, and in `*wire` every byte read.
  std::string serverReads(int fd, crypto::Aead2022StreamDecoder* decoder, size_t payload,
                          std::vector<uint8_t>* wire) {
    std::string opened;
    size_t used = 0;
    runUntil(loop_, [&] {
      const bool open = readAvailable(fd, wire);
      std::vector<uint8_t> out(wire->size() - used + 1);
      crypto::CodecProgress progress;
      EXPECT_EQ(decoder->decode(std::span<const uint8_t>(*wire).subspan(used), out,
                                loop_.unixSeconds(), &progress),
                crypto::Status2022::Ok);
      used += progress.consumed;
      opened.append(out.begin(), out.begin() + static_cast<long>(progress.produced));
      return !open || (decoder->headerComplete() && opened.size() >= payload);
    });
    return opened;
  }
  // What the server answers: `text` sealed as the response to `request_salt`, at `now`.
  std::vector<uint8_t> response(std::span<const uint8_t> request_salt, const std::string& text,
                                uint64_t now) {
    crypto::Aead2022StreamEncoder enc = crypto::Aead2022StreamEncoder::response(
        method(), crypto::opensslProvider(), env_.credentials.master.bytes(), request_salt);
    std::vector<uint8_t> out(enc.maxEncodedSize(text.size()));
    crypto::CodecProgress progress;
    EXPECT_TRUE(enc.encode(bytesOf(text), out, now, &progress));
    out.resize(progress.produced);
    return out;
  }
  uint64_t closed(CloseReason reason) {
    return worker_->stats().closed[static_cast<size_t>(reason)];
  }
  // The session gets `answer` from the server: it ends, and the application sees only EOF.
  void expectAborted(int app, int server, const std::vector<uint8_t>& answer,
                     uint64_t aborted = 1) {
    ASSERT_TRUE(sendBytes(server, answer));
    std::vector<uint8_t> at_app;
    ASSERT_TRUE(waitForEof(loop_, app, &at_app));
    EXPECT_TRUE(at_app.empty()) << at_app.size() << " bytes reached the application";
    EXPECT_EQ(closed(CloseReason::BadStream), aborted);
  }

  dns::DnsCache dns_cache_;
  RelayEnv env_;
  EventLoop loop_;
  Fd server_ = listenLoopback();
  std::unique_ptr<UpstreamBalancer> upstreams_;  // outlives the worker
  std::unique_ptr<Worker> worker_;
  uint16_t port_ = 0;
};

TEST_P(ClientSession2022Test, HeadersAndFirstDataInOneWriteThenTheResponseIsChecked) {
  start();
  Fd app = connectLoopback(port_);
  ASSERT_TRUE(sendText(app.get(), "GET /"));
  Fd server = acceptWithin(loop_, server_.get());
  ASSERT_TRUE(server.valid());
  crypto::Aead2022StreamDecoder decoder = requestDecoder();
  std::vector<uint8_t> wire;
  EXPECT_EQ(serverReads(server.get(), &decoder, 5, &wire), "GET /");
  EXPECT_EQ(decoder.requestHeader().target.toString(), kTarget.toString());
  EXPECT_EQ(decoder.requestHeader().padding, 0u);  // data came: no padding
  EXPECT_EQ(worker_->stats().bytes_to_remotes, wire.size());

  ASSERT_TRUE(
      sendBytes(server.get(), response(decoder.salt(), "HTTP/1.0 200", loop_.unixSeconds())));
  EXPECT_EQ(readSettled(loop_, app.get(), 12), bytesOf("HTTP/1.0 200"));
}

TEST_P(ClientSession2022Test, SilentApplicationSendsPaddedHeadersAfterTheWait) {
  env_.first_data_wait = milliseconds(20);
  start();
  Fd app = connectLoopback(port_);
  Fd server = acceptWithin(loop_, server_.get());
  ASSERT_TRUE(server.valid());
  crypto::Aead2022StreamDecoder decoder = requestDecoder();
  std::vector<uint8_t> wire;
  EXPECT_EQ(serverReads(server.get(), &decoder, 0, &wire), "");
  EXPECT_GE(decoder.requestHeader().padding, 1u);
  EXPECT_LE(decoder.requestHeader().padding, crypto::kMaxPaddingLength);
  ASSERT_TRUE(sendText(app.get(), "late"));
  std::vector<uint8_t> later;  // serverReads() decodes its `wire` from the start
  EXPECT_EQ(serverReads(server.get(), &decoder, 4, &later), "late");
}

TEST_P(ClientSession2022Test, ResponseToAnotherSaltOrStaleAbortsTheSession) {
  start();
  Fd app = connectLoopback(port_);
  ASSERT_TRUE(sendText(app.get(), "hi"));
  Fd server = acceptWithin(loop_, server_.get());
  crypto::Aead2022StreamDecoder decoder = requestDecoder();
  std::vector<uint8_t> wire;
  ASSERT_EQ(serverReads(server.get(), &decoder, 2, &wire), "hi");
  std::vector<uint8_t> other(decoder.salt().begin(), decoder.salt().end());
  other[0] ^= 1;
  expectAborted(app.get(), server.get(), response(other, "not yours", loop_.unixSeconds()));
  // The same session answered by a stale response (120 s old) instead.
  Fd app2 = connectLoopback(port_);
  ASSERT_TRUE(sendText(app2.get(), "hi"));
  Fd server2 = acceptWithin(loop_, server_.get());
  crypto::Aead2022StreamDecoder decoder2 = requestDecoder();
  wire.clear();
  ASSERT_EQ(serverReads(server2.get(), &decoder2, 2, &wire), "hi");
  expectAborted(app2.get(), server2.get(),
                response(decoder2.salt(), "old", loop_.unixSeconds() - 120), 2);
}

TEST_P(ClientSession2022Test, ReflectedRequestAbortsTheSession) {
  start();
  Fd app = connectLoopback(port_);
  ASSERT_TRUE(sendText(app.get(), std::string(100, 'r')));
  Fd server = acceptWithin(loop_, server_.get());
  crypto::Aead2022StreamDecoder decoder = requestDecoder();
  std::vector<uint8_t> wire;
  ASSERT_EQ(serverReads(server.get(), &decoder, 100, &wire).size(), 100u);
  expectAborted(app.get(), server.get(), wire);  // our own request sent back
}

std::string methodTestName(const ::testing::TestParamInfo<const char*>& info) {
  std::string name(info.param + 12);  // after "2022-blake3-"
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Methods, ClientSession2022Test,
                         ::testing::Values("2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm",
                                           "2022-blake3-chacha20-poly1305"),
                         methodTestName);

// A password iPSK:uPSK (SIP023, §2.7): the request carries the identity header naming the user,
// the stream and the response are keyed with the uPSK.
class ClientSessionIdentityTest : public ClientSession2022Test {
 protected:
  ClientSessionIdentityTest() {
    std::vector<uint8_t> ipsk(method().key_size);
    for (size_t i = 0; i < ipsk.size(); ++i) ipsk[i] = static_cast<uint8_t>(0xC0 ^ i);
    ipsk_ = crypto::MasterKey(ipsk);
    env_.credentials.key_chain = {ipsk_, env_.credentials.master};
    users_.add(env_.credentials.master.bytes());
  }

  crypto::MasterKey ipsk_;
  crypto::UserKeyTable users_;  // the server's users: ours only
};

TEST_P(ClientSessionIdentityTest, TheRequestNamesTheUserAndTheResponseIsKeyedWithIt) {
  start();
  Fd app = connectLoopback(port_);
  ASSERT_TRUE(sendText(app.get(), "GET /"));
  Fd server = acceptWithin(loop_, server_.get());
  ASSERT_TRUE(server.valid());
  // The server opens the identity header with the iPSK and finds our key by its hash.
  crypto::Aead2022StreamDecoder decoder = crypto::Aead2022StreamDecoder::request(
      method(), crypto::opensslProvider(), ipsk_.bytes(), &users_);
  std::vector<uint8_t> wire;
  EXPECT_EQ(serverReads(server.get(), &decoder, 5, &wire), "GET /");
  ASSERT_TRUE(decoder.user().has_value());
  EXPECT_EQ(*decoder.user(), crypto::userHash(env_.credentials.master.bytes()));
  ASSERT_TRUE(
      sendBytes(server.get(), response(decoder.salt(), "HTTP/1.0 200", loop_.unixSeconds())));
  EXPECT_EQ(readSettled(loop_, app.get(), 12), bytesOf("HTTP/1.0 200"));
}

INSTANTIATE_TEST_SUITE_P(AesMethods, ClientSessionIdentityTest,
                         ::testing::Values("2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm"),
                         methodTestName);

}  // namespace
}  // namespace shadowrelay::relay::testing
