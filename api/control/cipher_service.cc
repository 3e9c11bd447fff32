// SPDX-License-Identifier: Apache-2.0
#include "api/control/cipher_service.h"

#include <string>

#include "api/control/grpc_status.h"
#include "crypto/legacy_stream.h"
#include "crypto/method.h"

namespace shadowrelay::api::control {

namespace v1 = ::shadowrelay::v1;

namespace {

// A legacy stream method (offered only with --allow-insecure-ciphers): its library is not one
// of the AEAD providers.
void addStreamCipher(const crypto::MethodInfo& m, v1::Cipher* c) {
  c->set_name(std::string(m.name));
  c->set_key_size(static_cast<uint32_t>(m.key_size));
  c->set_salt_size(static_cast<uint32_t>(m.salt_size));
  c->set_nonce_size(static_cast<uint32_t>(m.nonce_size));
  c->set_tag_size(0);
  c->set_aead(false);
  c->set_edition(v1::EDITION_STREAM);
  c->set_recommended(false);
  c->add_providers(std::string(crypto::streamLibrary(m)));
  c->set_selected_provider(std::string(crypto::streamLibrary(m)));
}

}  // namespace

grpc::Status CipherService::ListCiphers(grpc::ServerContext* /*context*/,
                                        const v1::ListCiphersRequest* /*request*/,
                                        v1::ListCiphersResponse* response) {
  for (const crypto::MethodInfo& m : crypto::methodTable()) {
    if (crypto::isStream(m)) {
      if (registry_.allowsInsecureCiphers()) addStreamCipher(m, response->add_ciphers());
      continue;
    }
    v1::Cipher* c = response->add_ciphers();
    c->set_name(std::string(m.name));
    c->set_key_size(static_cast<uint32_t>(m.key_size));
    c->set_salt_size(static_cast<uint32_t>(m.salt_size));
    c->set_nonce_size(static_cast<uint32_t>(m.nonce_size));
    c->set_tag_size(static_cast<uint32_t>(m.tag_size));
    c->set_aead(true);  // every supported method is an AEAD method (SIP004 or SIP022)
    c->set_edition(m.edition == crypto::Edition::Aead2022 ? v1::EDITION_2022
                                                          : v1::EDITION_AEAD_2017);
    c->set_recommended(m.recommended);
    if (providers_ != nullptr) {
      for (const crypto::AeadProvider* p : providers_->available()) {
        if (p->supports(m.algorithm)) {
          c->add_providers(std::string(p->name()));
        }
      }
      c->set_selected_provider(std::string(providers_->providerFor(m).name()));
    }
  }
  return grpc::Status::OK;
}

grpc::Status CipherService::GetDefaults(grpc::ServerContext* /*context*/,
                                        const v1::GetDefaultsRequest* /*request*/,
                                        v1::Defaults* response) {
  response->set_method(registry_.defaultMethod());
  return grpc::Status::OK;
}

grpc::Status CipherService::SetDefaults(grpc::ServerContext* /*context*/,
                                        const v1::SetDefaultsRequest* request,
                                        v1::Defaults* response) {
  if (request->method().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "method: required");
  }
  auto method = registry_.setDefaultMethod(request->method());
  if (!method.ok()) {
    return toGrpcStatus(method.status());
  }
  response->set_method(*method);
  return grpc::Status::OK;
}

}  // namespace shadowrelay::api::control
