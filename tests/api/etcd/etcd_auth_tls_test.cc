// SPDX-License-Identifier: Apache-2.0
// EtcdClient with etcd's auth (user and password, the token as metadata, re-authentication when
// the token expired) and with TLS (https endpoints, a CA and a client certificate made by the
// openssl CLI for the test), against a real 3-member etcd 3.4 on loopback.
#include <thread>

#include "absl/strings/str_cat.h"
#include "api/etcd/etcd_client.h"
#include "gtest/gtest.h"
#include "tests/api/etcd/watch_recorder.h"
#include "tests/testing/etcd_cluster.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::api::etcd {
namespace {

using shadowrelay::testing::EtcdCluster;
using shadowrelay::testing::EtcdPki;
using testing::CallCounter;
using testing::WatchRecorder;

constexpr char kPassword[] = "s3cret-pw";

std::unique_ptr<EtcdClient> makeClient(EtcdOptions options, CallCounter* calls = nullptr) {
  if (calls != nullptr) {
    options.observer = calls->observer();
  }
  auto client = EtcdClient::create(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

void etcdctlOk(EtcdCluster& cluster, const std::vector<std::string>& args) {
  auto run = cluster.etcdctl(args);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->exit_code, 0) << run->output;
}

TEST(EtcdAuthTest, PasswordTokenAndReauthenticationAfterTheTokenExpired) {
  EtcdCluster::Options options;
  options.extra_flags = {"--auth-token-ttl=1"};  // simple tokens unused for 1 s expire
  auto cluster = EtcdCluster::start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  etcdctlOk(**cluster, {"user", "add", absl::StrCat("root:", kPassword), "--interactive=false"});
  etcdctlOk(**cluster, {"user", "grant-role", "root", "root"});
  etcdctlOk(**cluster, {"auth", "enable"});
  (*cluster)->setCredentials(absl::StrCat("root:", kPassword));

  EtcdOptions base;
  base.endpoints = (*cluster)->endpoints();

  // No credentials: etcd refuses.
  auto anonymous = makeClient(base);
  auto refused = anonymous->put("/a/k", "v");
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();

  // A wrong password: Authenticate fails, with etcd's code; the password is not in the message.
  EtcdOptions wrong = base;
  wrong.user = "root";
  wrong.password = "not-the-password";
  CallCounter wrong_calls;
  auto impostor = makeClient(wrong, &wrong_calls);
  auto denied = impostor->put("/a/k", "v");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kInvalidArgument) << denied.status();
  EXPECT_NE(denied.status().message().find("root"), absl::string_view::npos);
  EXPECT_EQ(denied.status().message().find("not-the-password"), absl::string_view::npos);
  EXPECT_EQ(wrong_calls.count("authenticate", absl::StatusCode::kInvalidArgument), 1);
  EXPECT_EQ(wrong_calls.count("put"), 0);  // never sent without a token

  // The right password: everything works, one Authenticate for all the calls.
  EtcdOptions right = base;
  right.user = "root";
  right.password = kPassword;
  CallCounter calls;
  auto client = makeClient(right, &calls);
  auto first = client->put("/a/k", "v1");
  ASSERT_TRUE(first.ok()) << first.status();
  auto got = client->get("/a/k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->kvs.at(0).value, "v1");
  WatchRecorder recorder;
  auto watch = client->watchPrefix("/a/", *first + 1, recorder.callback());
  auto second = client->put("/a/k", "v2");
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(recorder.waitForRevision(*second, absl::Seconds(10)));
  auto lease = client->keepLease(2, [] {});
  ASSERT_TRUE(lease.ok()) << lease.status();
  lease->reset();
  EXPECT_EQ(calls.count("authenticate", absl::StatusCode::kOk), 1);

  // Unused for longer than --auth-token-ttl, the token is gone: the next call is refused once,
  // authenticates again and succeeds.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto third = client->put("/a/k", "v3");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_GE(calls.count("put", absl::StatusCode::kUnauthenticated), 1);
  EXPECT_EQ(calls.count("authenticate", absl::StatusCode::kOk), 2);
  ASSERT_TRUE(recorder.waitForRevision(*third, absl::Seconds(10)));

  // The watch's member dies while its token has expired: the watch reopens on another member,
  // authenticating again, and misses nothing.
  std::this_thread::sleep_for(std::chrono::seconds(3));
  auto other = makeClient(right);  // a writer that does not share the watch's token
  ASSERT_TRUE((*cluster)->kill(0).ok());
  absl::StatusOr<int64_t> fourth;
  for (int i = 0; i < 100; ++i) {
    fourth = other->put("/a/k", "v4");
    if (fourth.ok()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  ASSERT_TRUE(recorder.waitForRevision(*fourth, absl::Seconds(15)));
  EXPECT_GE(calls.count("authenticate", absl::StatusCode::kOk), 3);
  std::vector<std::string> expected = {
      absl::StrCat(*second, " PUT /a/k=v2"),
      absl::StrCat(*third, " PUT /a/k=v3"),
      absl::StrCat(*fourth, " PUT /a/k=v4"),
  };
  EXPECT_EQ(recorder.events(), expected);
}

class EtcdTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = shadowrelay::testing::makeEtcdPki(dir_.path());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    EtcdCluster::Options options;
    options.tls = &pki_;
    auto cluster = EtcdCluster::start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
  }

  EtcdOptions tlsOptions() const {
    EtcdOptions options;
    options.endpoints = cluster_->endpoints();
    options.ca_file = pki_.ca_cert;
    options.cert_file = pki_.client_cert;
    options.key_file = pki_.client_key;
    options.request_timeout = absl::Seconds(1);
    return options;
  }

  shadowrelay::testing::TempDir dir_;
  EtcdPki pki_;
  std::unique_ptr<EtcdCluster> cluster_;
};

TEST_F(EtcdTlsTest, HttpsWithTheCaAndAClientCertificateWorks) {
  for (const std::string& endpoint : cluster_->endpoints()) {
    EXPECT_EQ(endpoint.rfind("https://127.0.0.1:", 0), 0u) << endpoint;
  }
  CallCounter calls;
  auto client = makeClient(tlsOptions(), &calls);
  auto rev = client->put("/t/k", "over tls");
  ASSERT_TRUE(rev.ok()) << rev.status();
  auto got = client->getPrefix("/t/");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->kvs.size(), 1u);
  EXPECT_EQ(got->kvs[0].value, "over tls");
  WatchRecorder recorder;
  auto watch = client->watchPrefix("/t/", *rev, recorder.callback());
  ASSERT_TRUE(recorder.waitForRevision(*rev, absl::Seconds(10)));
  for (const std::string& endpoint : cluster_->endpoints()) {
    EXPECT_TRUE(client->status(endpoint).ok());
  }
}

TEST_F(EtcdTlsTest, AnUntrustedServerOrNoClientCertificateIsRefused) {
  // A CA that did not sign the members' certificate: the client refuses the server.
  shadowrelay::testing::TempDir other_dir;
  auto other = shadowrelay::testing::makeEtcdPki(other_dir.path());
  ASSERT_TRUE(other.ok()) << other.status();
  EtcdOptions untrusted = tlsOptions();
  untrusted.ca_file = other->ca_cert;
  auto put = makeClient(untrusted)->put("/t/k", "x");
  EXPECT_EQ(put.status().code(), absl::StatusCode::kUnavailable) << put.status();

  // No client certificate: the members (--client-cert-auth) refuse the client.
  EtcdOptions anonymous = tlsOptions();
  anonymous.cert_file.clear();
  anonymous.key_file.clear();
  put = makeClient(anonymous)->put("/t/k", "x");
  EXPECT_EQ(put.status().code(), absl::StatusCode::kUnavailable) << put.status();

  // Plain HTTP/2 to a TLS port.
  EtcdOptions plain = tlsOptions();
  for (std::string& endpoint : plain.endpoints) {
    endpoint.replace(0, 5, "http");
  }
  put = makeClient(plain)->put("/t/k", "x");
  EXPECT_EQ(put.status().code(), absl::StatusCode::kUnavailable) << put.status();

  // None of them wrote anything.
  auto got = makeClient(tlsOptions())->get("/t/k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->kvs.empty());
}

}  // namespace
}  // namespace shadowrelay::api::etcd
