// SPDX-License-Identifier: Apache-2.0
#include "crypto/aead2022.h"

#include <array>

#include "crypto/key_derivation.h"

namespace shadowrelay::crypto {

bool keySession2022(const MethodInfo& method, const AeadProvider& provider,
                    std::span<const uint8_t> psk, std::span<const uint8_t> salt, AeadPtr& aead) {
  if (psk.size() != method.key_size) {
    return false;
  }
  std::array<uint8_t, kMaxKeySize> subkey{};
  const std::span<uint8_t> key(subkey.data(), method.key_size);
  sessionSubkey2022(psk, salt, key);
  bool ok;
  if (aead == nullptr) {
    aead = provider.create(method.algorithm, key);
    ok = aead != nullptr;
  } else {
    ok = aead->rekey(key);
  }
  subkey.fill(0);
  return ok;
}

absl::string_view statusName(Status2022 status) {
  switch (status) {
    case Status2022::Ok:
      return "ok";
    case Status2022::AuthFailed:
      return "auth_failed";
    case Status2022::UnknownUser:
      return "unknown_user";
    case Status2022::BadType:
      return "bad_type";
    case Status2022::StaleTimestamp:
      return "stale_timestamp";
    case Status2022::BadLength:
      return "bad_length";
    case Status2022::BadAddress:
      return "bad_address";
    case Status2022::BadHeader:
      return "bad_header";
    case Status2022::SaltMismatch:
      return "salt_mismatch";
    case Status2022::CryptoError:
      return "crypto_error";
  }
  return "unknown";
}

}  // namespace shadowrelay::crypto
