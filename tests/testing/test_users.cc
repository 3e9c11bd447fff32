// SPDX-License-Identifier: Apache-2.0
#include "tests/testing/test_users.h"

#include <memory>
#include <utility>

#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"

namespace shadowrelay::relay::testing {

RelayUser makeUser(const std::string& name, const char* method_name, uint16_t port) {
  RelayUser user;
  user.name = name;
  user.method = *crypto::findAnyMethod(method_name);
  user.provider = &crypto::opensslProvider();
  user.key = crypto::evpBytesToKey("password-of-" + name, user.method->key_size);
  user.port = port;
  return user;
}

UserTablePtr makeTable(std::vector<RelayUser> users, uint64_t generation, const UserTable* previous,
                       std::vector<IdentityKey> identity_keys) {
  return std::make_shared<const UserTable>(generation, std::move(users), previous,
                                           std::move(identity_keys));
}

IdentityKey makeIdentityKey(uint16_t port, const char* method_name, const crypto::MasterKey& key) {
  IdentityKey identity;
  identity.port = port;
  identity.method = *crypto::findAnyMethod(method_name);
  identity.provider = &crypto::opensslProvider();
  identity.key = key;
  return identity;
}

Credentials makeCredentials(const std::string& password, const char* method_name) {
  Credentials credentials;
  credentials.method = *crypto::findMethod(method_name);
  credentials.provider = &crypto::opensslProvider();
  credentials.master = crypto::evpBytesToKey(password, credentials.method->key_size);
  return credentials;
}

}  // namespace shadowrelay::relay::testing
