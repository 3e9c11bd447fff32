// SPDX-License-Identifier: Apache-2.0
#include "crypto/key_derivation.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/md5.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "blake3.h"

namespace shadowrelay::crypto {

MasterKey::~MasterKey() {
  if (!bytes_.empty()) {
    OPENSSL_cleanse(bytes_.data(), bytes_.size());
  }
}

MasterKey evpBytesToKey(absl::string_view password, size_t key_len) {
  std::vector<uint8_t> out;
  out.reserve(key_len + MD5_DIGEST_LENGTH);
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const EVP_MD* md5 = EVP_md5();
  while (out.size() < key_len) {
    EVP_DigestInit_ex(ctx, md5, nullptr);
    if (!out.empty()) {
      EVP_DigestUpdate(ctx, digest, digest_len);
    }
    EVP_DigestUpdate(ctx, password.data(), password.size());
    EVP_DigestFinal_ex(ctx, digest, &digest_len);
    out.insert(out.end(), digest, digest + digest_len);
  }
  EVP_MD_CTX_free(ctx);
  OPENSSL_cleanse(digest, sizeof(digest));
  MasterKey key(std::span<const uint8_t>(out.data(), key_len));
  OPENSSL_cleanse(out.data(), out.size());
  return key;
}

absl::StatusOr<MasterKey> decodeBase64Key(absl::string_view text, const MethodInfo& method) {
  std::string decoded;
  const bool urlsafe = text.find_first_of("-_") != absl::string_view::npos;
  const bool ok = urlsafe ? absl::WebSafeBase64Unescape(text, &decoded)
                          : absl::Base64Unescape(text, &decoded);
  if (!ok || text.empty()) {
    return absl::InvalidArgumentError("key: not valid base64");
  }
  if (decoded.size() != method.key_size) {
    const size_t got = decoded.size();
    OPENSSL_cleanse(decoded.data(), decoded.size());
    return absl::InvalidArgumentError(absl::StrCat("key: decodes to ", got, " bytes but ",
                                                   method.name, " needs ", method.key_size));
  }
  MasterKey key(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(decoded.data()),
                                         decoded.size()));
  OPENSSL_cleanse(decoded.data(), decoded.size());
  return key;
}

absl::StatusOr<MasterKey> masterKeyFor(const MethodInfo& method, absl::string_view password,
                                       absl::string_view base64_key) {
  if (!base64_key.empty() && !password.empty()) {
    return absl::InvalidArgumentError("password and key: give one, not both");
  }
  if (!base64_key.empty()) {
    return decodeBase64Key(base64_key, method);
  }
  if (password.empty()) {
    return absl::InvalidArgumentError("password: missing (or give key)");
  }
  return evpBytesToKey(password, method.key_size);
}

bool hkdfSha1(std::span<const uint8_t> ikm, std::span<const uint8_t> salt,
              std::span<const uint8_t> info, std::span<uint8_t> out) {
  // OpenSSL's HKDF; the fetched algorithm is cached (a fetch per call costs a global lock).
  static EVP_KDF* const kHkdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kHkdf == nullptr || out.empty()) {
    return false;
  }
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kHkdf);
  if (ctx == nullptr) {
    return false;
  }
  char digest[] = "SHA1";
  OSSL_PARAM params[5];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()), ikm.size());
  if (!salt.empty()) {
    params[n++] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size());
  }
  params[n++] = OSSL_PARAM_construct_octet_string(
      OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()), info.size());
  params[n] = OSSL_PARAM_construct_end();
  const bool ok = EVP_KDF_derive(ctx, out.data(), out.size(), params) == 1;
  EVP_KDF_CTX_free(ctx);
  return ok;
}

bool sessionSubkey(std::span<const uint8_t> master, std::span<const uint8_t> salt,
                   std::span<uint8_t> out) {
  static constexpr uint8_t kInfo[] = {'s', 's', '-', 's', 'u', 'b', 'k', 'e', 'y'};
  return hkdfSha1(master, salt, kInfo, out);
}

void blake3DeriveKey(absl::string_view context, std::span<const uint8_t> material,
                     std::span<uint8_t> out) {
  blake3_hasher hasher;
  const std::string ctx(context);
  blake3_hasher_init_derive_key(&hasher, ctx.c_str());
  blake3_hasher_update(&hasher, material.data(), material.size());
  blake3_hasher_finalize(&hasher, out.data(), out.size());
}

void randomBytes(std::span<uint8_t> out) {
  if (!out.empty() && RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    std::abort();  // No entropy: nothing safe can be done.
  }
}

std::string randomBase64Key(size_t size) {
  std::vector<uint8_t> key(size);
  randomBytes(key);
  std::string out =
      absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
  OPENSSL_cleanse(key.data(), key.size());
  return out;
}

}  // namespace shadowrelay::crypto
