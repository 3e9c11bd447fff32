// SPDX-License-Identifier: Apache-2.0
// The control API over TLS (gRPC on OpenSSL 3) in a process that also runs the BoringSSL crypto
// plugin (ARCHITECTURE.md: RTLD_DEEPBIND), and the ciphers/status calls naming both providers.
#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "api/control/control_server.h"
#include "crypto/providers.h"
#include "gtest/gtest.h"
#include "shadowrelay/v1/ciphers.grpc.pb.h"
#include "shadowrelay/v1/server.grpc.pb.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/tls_certs.h"

namespace shadowrelay::api::control {
namespace {

namespace v1 = ::shadowrelay::v1;

constexpr char kToken[] = "boring-token";

TEST(ControlServerBoringsslTest, ProvidersAreNamedOverTls) {
  auto providers = crypto::CryptoProviders::create(crypto::ProviderChoice::BoringSsl);
  ASSERT_TRUE(providers.ok()) << providers.status();
  auto registry = users::UserRegistry::open(users::RegistryOptions{});
  ASSERT_TRUE(registry.ok()) << registry.status();

  shadowrelay::testing::TempDir dir;
  const shadowrelay::testing::Pem pem =
      shadowrelay::testing::selfSignedCertificate("localhost", "DNS:localhost,IP:127.0.0.1");
  shadowrelay::testing::writeText(dir.file("server.crt"), pem.cert);
  shadowrelay::testing::writeSecret(dir.file("server.key"), pem.key);
  ControlServerOptions o;
  o.listen = "127.0.0.1:0";
  o.token = kToken;
  o.tls_cert_file = dir.file("server.crt");
  o.tls_key_file = dir.file("server.key");
  o.providers = providers->get();
  auto server = ControlServer::start(o, **registry);
  ASSERT_TRUE(server.ok()) << server.status();

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = pem.cert;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", (*server)->port()),
                                           grpc::SslCredentials(tls), args);
  auto context = [] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    c->AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    return c;
  };

  v1::ListCiphersResponse ciphers;
  grpc::Status s = v1::CipherService::NewStub(channel)->ListCiphers(
      context().get(), v1::ListCiphersRequest(), &ciphers);
  ASSERT_TRUE(s.ok()) << s.error_message();
  bool chacha_seen = false;
  for (const v1::Cipher& c : ciphers.ciphers()) {
    if (c.name() == "chacha20-ietf-poly1305") {
      chacha_seen = true;
      EXPECT_EQ(std::vector<std::string>(c.providers().begin(), c.providers().end()),
                (std::vector<std::string>{"openssl", "boringssl"}));
      EXPECT_EQ(c.selected_provider(), "boringssl");  // forced with ProviderChoice::BoringSsl
    }
  }
  EXPECT_TRUE(chacha_seen);

  v1::ServerStatus status;
  s = v1::ServerService::NewStub(channel)->GetStatus(context().get(), v1::GetStatusRequest(),
                                                     &status);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(status.crypto_providers_size(), 2);
  EXPECT_EQ(status.crypto_providers(1).name(), "boringssl");
  const auto& algorithms = status.crypto_providers(1).algorithms();
  EXPECT_NE(std::find(algorithms.begin(), algorithms.end(), "ChaCha20-Poly1305"), algorithms.end());
}

}  // namespace
}  // namespace shadowrelay::api::control
