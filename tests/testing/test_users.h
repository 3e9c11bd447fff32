// SPDX-License-Identifier: Apache-2.0
#pragma once
// Users, user tables and client credentials for tests.

#include <cstdint>
#include <string>
#include <vector>

#include "relay/context/relay_env.h"
#include "relay/users/user_table.h"

namespace shadowrelay::relay::testing {

/// An enabled user of `method_name` (OpenSSL) whose key is EVP_BytesToKey("password-of-" + name)
/// (for a 2022 method: a PSK of those bytes).
RelayUser makeUser(const std::string& name, const char* method_name = "aes-128-gcm",
                   uint16_t port = 0);
/// An immutable table of `users`, with the SIP023 identity keys of `identity_keys`' ports.
UserTablePtr makeTable(std::vector<RelayUser> users, uint64_t generation = 1,
                       const UserTable* previous = nullptr,
                       std::vector<IdentityKey> identity_keys = {});
/// The identity key `key` (its method's size) of `port` for `method_name` (OpenSSL).
IdentityKey makeIdentityKey(uint16_t port, const char* method_name, const crypto::MasterKey& key);

/// What a client (local, tunnel) speaks with: `method_name` (OpenSSL), EVP_BytesToKey(password).
Credentials makeCredentials(const std::string& password, const char* method_name = "aes-128-gcm");

}  // namespace shadowrelay::relay::testing
