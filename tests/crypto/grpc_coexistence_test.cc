// SPDX-License-Identifier: Apache-2.0
// ARCHITECTURE.md: Debian's gRPC links OpenSSL 3, and BoringSSL exports the same symbols. With the
// BoringSSL provider loaded as a RTLD_DEEPBIND plugin, a TLS gRPC server and client in the same
// process must still work (without DEEPBIND this crashed in CRYPTO_get_ex_new_index).
#include <grpcpp/grpcpp.h>

#include "crypto/boringssl_provider.h"
#include "gtest/gtest.h"
#include "tests/crypto/coexistence.grpc.pb.h"
#include "tests/testing/tls_certs.h"

namespace shadowrelay::crypto {
namespace {

shadowrelay::testing::Pem localhostCertificate() {
  return shadowrelay::testing::selfSignedCertificate("localhost", "DNS:localhost,IP:127.0.0.1");
}

class EchoService final : public shadowrelay::test::Echo::Service {
  grpc::Status Say(grpc::ServerContext*, const shadowrelay::test::EchoRequest* req,
                   shadowrelay::test::EchoReply* reply) override {
    reply->set_text("echo: " + req->text());
    return grpc::Status::OK;
  }
};

bool boringsslSealWorks(const AeadProvider& p) {
  AeadPtr aead = p.create(AeadAlgorithm::ChaCha20Poly1305, std::vector<uint8_t>(32, 1));
  std::vector<uint8_t> buf(100 + kTagSize, 2);
  std::vector<uint8_t> out(100);
  const std::vector<uint8_t> nonce(12, 0);
  return aead != nullptr && aead->seal(nonce, {}, std::span<const uint8_t>(buf).first(100),
                                       buf.data()) &&
         aead->open(nonce, {}, buf, out.data()) && out == std::vector<uint8_t>(100, 2);
}

TEST(GrpcCoexistenceTest, TlsGrpcWorksWithBoringsslPluginLoaded) {
  auto boring = loadBoringsslProvider();
  ASSERT_TRUE(boring.ok()) << boring.status();
  ASSERT_TRUE(boringsslSealWorks(**boring));

  const shadowrelay::testing::Pem pem = localhostCertificate();
  ASSERT_FALSE(pem.cert.empty());
  grpc::SslServerCredentialsOptions server_opts;
  server_opts.pem_key_cert_pairs.push_back({pem.key, pem.cert});
  EchoService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(server_opts), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  grpc::SslCredentialsOptions client_opts;
  client_opts.pem_root_certs = pem.cert;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                           grpc::SslCredentials(client_opts), args);
  auto stub = shadowrelay::test::Echo::NewStub(channel);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    shadowrelay::test::EchoRequest req;
    req.set_text("hello " + std::to_string(i));
    shadowrelay::test::EchoReply reply;
    grpc::Status status = stub->Say(&ctx, req, &reply);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(reply.text(), "echo: hello " + std::to_string(i));
    // The plugin keeps working while gRPC's OpenSSL TLS is in use.
    EXPECT_TRUE(boringsslSealWorks(**boring));
  }
  // A client that does not trust the certificate is refused: TLS is really on.
  {
    grpc::SslCredentialsOptions untrusted;
    untrusted.pem_root_certs = localhostCertificate().cert;
    auto bad = shadowrelay::test::Echo::NewStub(grpc::CreateCustomChannel(
        "127.0.0.1:" + std::to_string(port), grpc::SslCredentials(untrusted), args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    shadowrelay::test::EchoRequest req;
    shadowrelay::test::EchoReply reply;
    EXPECT_FALSE(bad->Say(&ctx, req, &reply).ok());
  }
  server->Shutdown();
}

}  // namespace
}  // namespace shadowrelay::crypto
