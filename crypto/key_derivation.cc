// SPDX-License-Identifier: Apache-2.0
#include "crypto/key_derivation.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/md5.h>
#include <openssl/rand.h>

#include <algorithm>
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

namespace {

/// HMAC-SHA1 on a per-thread MAC context whose digest is set once. EVP_KDF "HKDF" and
/// EVP_Q_mac look SHA-1 and HMAC up again on every call (a fetch, allocations and locks: 8% of
/// the relay's CPU per new connection, measured with perf); re-keying a kept context does not.
class HmacSha1 {
 public:
  HmacSha1() {
    static EVP_MAC* const kHmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (kHmac == nullptr) return;
    ctx_ = EVP_MAC_CTX_new(kHmac);
    if (ctx_ == nullptr) return;
    char digest[] = "SHA1";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(ctx_, params) != 1) {
      EVP_MAC_CTX_free(ctx_);
      ctx_ = nullptr;
    }
  }
  ~HmacSha1() { EVP_MAC_CTX_free(ctx_); }
  HmacSha1(const HmacSha1&) = delete;
  HmacSha1& operator=(const HmacSha1&) = delete;

  static constexpr size_t kSize = 20;

  /// out = HMAC-SHA1(key, a | b | c).
  bool mac(std::span<const uint8_t> key, std::span<const uint8_t> a, std::span<const uint8_t> b,
           std::span<const uint8_t> c, uint8_t out[kSize]) {
    // HMAC with an empty key is a key of zeros (RFC 2104); OpenSSL refuses a null pointer.
    static const uint8_t kZero[1] = {0};
    size_t len = 0;
    return ctx_ != nullptr &&
           EVP_MAC_init(ctx_, key.empty() ? kZero : key.data(), key.size(), nullptr) == 1 &&
           EVP_MAC_update(ctx_, a.data(), a.size()) == 1 &&
           EVP_MAC_update(ctx_, b.data(), b.size()) == 1 &&
           EVP_MAC_update(ctx_, c.data(), c.size()) == 1 &&
           EVP_MAC_final(ctx_, out, &len, kSize) == 1 && len == kSize;
  }

 private:
  EVP_MAC_CTX* ctx_ = nullptr;
};

}  // namespace

bool hkdfSha1(std::span<const uint8_t> ikm, std::span<const uint8_t> salt,
              std::span<const uint8_t> info, std::span<uint8_t> out) {
  // RFC 5869 on HMAC-SHA1: PRK = HMAC(salt, IKM); T(i) = HMAC(PRK, T(i-1) | info | i).
  constexpr size_t kHash = HmacSha1::kSize;
  if (out.empty() || out.size() > 255 * kHash) return false;
  thread_local HmacSha1 hmac;
  uint8_t prk[kHash];
  if (!hmac.mac(salt, ikm, {}, {}, prk)) return false;
  uint8_t block[kHash];
  size_t done = 0;
  bool ok = true;
  for (uint8_t i = 1; done < out.size(); ++i) {
    const std::span<const uint8_t> previous(block, i == 1 ? 0 : kHash);
    const uint8_t counter[1] = {i};
    if (!hmac.mac(prk, previous, info, counter, block)) {
      ok = false;
      break;
    }
    const size_t take = std::min(kHash, out.size() - done);
    std::memcpy(out.data() + done, block, take);
    done += take;
  }
  OPENSSL_cleanse(prk, sizeof(prk));
  OPENSSL_cleanse(block, sizeof(block));
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
