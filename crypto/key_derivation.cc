// SPDX-License-Identifier: Apache-2.0
#include "crypto/key_derivation.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/md5.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "blake3.h"
#include "crypto/openssl_dispatch.h"

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

namespace {

// The key that `text` decodes to (standard base64, or URL-safe too when `url_safe_too`; padding
// optional), which must be method.key_size bytes; the decoded copy is wiped. Errors start with
// `field`.
absl::StatusOr<MasterKey> keyFromBase64(absl::string_view text, bool url_safe_too,
                                        const MethodInfo& method, absl::string_view field) {
  std::string decoded;
  const bool url_safe = url_safe_too && text.find_first_of("-_") != absl::string_view::npos;
  const bool ok = url_safe ? absl::WebSafeBase64Unescape(text, &decoded)
                           : absl::Base64Unescape(text, &decoded);
  if (!ok || text.empty()) {
    OPENSSL_cleanse(decoded.data(), decoded.size());
    return absl::InvalidArgumentError(absl::StrCat(
        field, url_safe_too ? ": not valid base64" : ": not valid base64 (A-Z a-z 0-9 + /)"));
  }
  if (decoded.size() != method.key_size) {
    const size_t got = decoded.size();
    OPENSSL_cleanse(decoded.data(), decoded.size());
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": decodes to ", got, " bytes but ", method.name, " needs ",
                     method.key_size, " (", (method.key_size + 2) / 3 * 4,
                     " base64 characters, e.g. from `openssl rand -base64 ", method.key_size,
                     "`)"));
  }
  MasterKey key(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(decoded.data()),
                                         decoded.size()));
  OPENSSL_cleanse(decoded.data(), decoded.size());
  return key;
}

}  // namespace

absl::StatusOr<MasterKey> decodeBase64Key(absl::string_view text, const MethodInfo& method) {
  return keyFromBase64(text, /*url_safe_too=*/true, method, "key");
}

absl::StatusOr<MasterKey> decodePsk(absl::string_view text, const MethodInfo& method) {
  if (text.find(':') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "PSK: a list of keys (iPSK:...:uPSK) where one key is expected");
  }
  return keyFromBase64(text, /*url_safe_too=*/false, method, "PSK");
}

absl::StatusOr<std::vector<MasterKey>> parsePskList(absl::string_view text,
                                                    const MethodInfo& method) {
  const std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  if (parts.size() > 1 && !usesSeparateHeader(method)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PSK: identity headers (iPSK:...:uPSK) exist only for the 2022 AES methods, not ",
        method.name));
  }
  std::vector<MasterKey> keys;
  keys.reserve(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::StatusOr<MasterKey> key = decodePsk(parts[i], method);
    if (!key.ok()) {
      if (parts.size() == 1) return key.status();
      const char* role = i + 1 == parts.size() ? "uPSK" : "iPSK";
      return absl::InvalidArgumentError(absl::StrCat("key ", i + 1, " of ", parts.size(), " (",
                                                     role, "): ", key.status().message()));
    }
    keys.push_back(*std::move(key));
  }
  return keys;
}

absl::StatusOr<MasterKey> masterKeyFor(const MethodInfo& method, absl::string_view password,
                                       absl::string_view base64_key) {
  if (!base64_key.empty() && !password.empty()) {
    return absl::InvalidArgumentError("password and key: give one, not both");
  }
  if (method.edition == Edition::Aead2022) {
    if (password.empty() && base64_key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("password: missing (", method.name, " takes a base64 PSK)"));
    }
    return decodePsk(password.empty() ? base64_key : password, method);
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

constexpr size_t kSha1Size = 20;
constexpr size_t kSha1Block = 64;

/// HMAC-SHA1 through EVP_MAC on a kept context whose digest is set once: the fallback of
/// HmacSha1. EVP_KDF "HKDF" and EVP_Q_mac fetch SHA-1 and HMAC again on every call; re-keying
/// a kept context does not (docs/PERFORMANCE.md, "Why the code is as it is").
class EvpHmacSha1 {
 public:
  EvpHmacSha1() {
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
  ~EvpHmacSha1() { EVP_MAC_CTX_free(ctx_); }
  EvpHmacSha1(const EvpHmacSha1&) = delete;
  EvpHmacSha1& operator=(const EvpHmacSha1&) = delete;

  /// out = HMAC-SHA1(key, a | b | c).
  bool mac(std::span<const uint8_t> key, std::span<const uint8_t> a, std::span<const uint8_t> b,
           std::span<const uint8_t> c, uint8_t out[kSha1Size]) {
    // HMAC with an empty key is a key of zeros (RFC 2104); OpenSSL refuses a null pointer.
    static const uint8_t kZero[1] = {0};
    size_t len = 0;
    return ctx_ != nullptr &&
           EVP_MAC_init(ctx_, key.empty() ? kZero : key.data(), key.size(), nullptr) == 1 &&
           EVP_MAC_update(ctx_, a.data(), a.size()) == 1 &&
           EVP_MAC_update(ctx_, b.data(), b.size()) == 1 &&
           EVP_MAC_update(ctx_, c.data(), c.size()) == 1 &&
           EVP_MAC_final(ctx_, out, &len, kSha1Size) == 1 && len == kSha1Size;
  }

 private:
  EVP_MAC_CTX* ctx_ = nullptr;
};

/// SHA-1's provider functions (openssl_dispatch.h).
struct Sha1Functions {
  void* provctx = nullptr;
  OSSL_FUNC_digest_newctx_fn* newctx = nullptr;
  OSSL_FUNC_digest_freectx_fn* freectx = nullptr;
  OSSL_FUNC_digest_init_fn* init = nullptr;
  OSSL_FUNC_digest_update_fn* update = nullptr;
  OSSL_FUNC_digest_final_fn* final = nullptr;

  bool complete() const {
    return newctx != nullptr && freectx != nullptr && init != nullptr && update != nullptr &&
           final != nullptr;
  }
};

/// HMAC-SHA1 (RFC 2104) written on SHA-1's provider functions with one kept digest context:
/// EVP_MAC_init re-creates HMAC's digest contexts on every new key (docs/PERFORMANCE.md).
class DirectHmacSha1 {
 public:
  explicit DirectHmacSha1(const Sha1Functions& functions)
      : f_(functions), ctx_(f_.newctx(f_.provctx)) {}
  ~DirectHmacSha1() {
    if (ctx_ != nullptr) f_.freectx(ctx_);
  }
  DirectHmacSha1(const DirectHmacSha1&) = delete;
  DirectHmacSha1& operator=(const DirectHmacSha1&) = delete;

  bool valid() const { return ctx_ != nullptr; }

  /// out = HMAC-SHA1(key, a | b | c).
  bool mac(std::span<const uint8_t> key, std::span<const uint8_t> a, std::span<const uint8_t> b,
           std::span<const uint8_t> c, uint8_t out[kSha1Size]) {
    uint8_t pad[kSha1Block] = {};
    uint8_t inner[kSha1Size];
    bool ok = true;
    if (key.size() > kSha1Block) {
      ok = hash(key, {}, {}, {}, pad);  // longer keys are hashed first
    } else if (!key.empty()) {
      std::memcpy(pad, key.data(), key.size());
    }
    for (uint8_t& x : pad) x ^= 0x36;
    ok = ok && hash(pad, a, b, c, inner);
    for (uint8_t& x : pad) x ^= 0x36 ^ 0x5c;
    ok = ok && hash(pad, inner, {}, {}, out);
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    f_.init(ctx_, nullptr);  // the kept context holds no key-derived state between calls
    return ok;
  }

 private:
  bool hash(std::span<const uint8_t> a, std::span<const uint8_t> b, std::span<const uint8_t> c,
            std::span<const uint8_t> d, uint8_t out[kSha1Size]) {
    if (f_.init(ctx_, nullptr) != 1) return false;
    for (std::span<const uint8_t> part : {a, b, c, d}) {
      if (!part.empty() && f_.update(ctx_, part.data(), part.size()) != 1) return false;
    }
    size_t len = 0;
    return f_.final(ctx_, out, &len, kSha1Size) == 1 && len == kSha1Size;
  }

  const Sha1Functions& f_;
  void* ctx_;
};

/// SHA-1's provider functions, or nullptr when they are missing or their HMAC differs from
/// EVP_MAC's on test inputs (a short and a long key); checked once.
const Sha1Functions* directSha1() {
  static const std::optional<Sha1Functions> kFunctions = []() -> std::optional<Sha1Functions> {
    static EVP_MD* const kSha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    if (kSha1 == nullptr) return std::nullopt;
    const OSSL_PROVIDER* provider = EVP_MD_get0_provider(kSha1);
    Sha1Functions f;
    const bool found = visitProviderFunctions(
        provider, OSSL_OP_DIGEST, EVP_MD_get0_name(kSha1), [&f](const OSSL_DISPATCH& d) {
          switch (d.function_id) {
            case OSSL_FUNC_DIGEST_NEWCTX:
              f.newctx = OSSL_FUNC_digest_newctx(&d);
              break;
            case OSSL_FUNC_DIGEST_FREECTX:
              f.freectx = OSSL_FUNC_digest_freectx(&d);
              break;
            case OSSL_FUNC_DIGEST_INIT:
              f.init = OSSL_FUNC_digest_init(&d);
              break;
            case OSSL_FUNC_DIGEST_UPDATE:
              f.update = OSSL_FUNC_digest_update(&d);
              break;
            case OSSL_FUNC_DIGEST_FINAL:
              f.final = OSSL_FUNC_digest_final(&d);
              break;
            default:
              break;
          }
        });
    if (!found) return std::nullopt;
    f.provctx = OSSL_PROVIDER_get0_provider_ctx(provider);
    if (!f.complete()) return std::nullopt;
    uint8_t key[kSha1Block + 16];
    uint8_t message[100];
    for (size_t i = 0; i < sizeof(key); ++i) key[i] = static_cast<uint8_t>(i * 3 + 1);
    for (size_t i = 0; i < sizeof(message); ++i) message[i] = static_cast<uint8_t>(i * 5 + 2);
    DirectHmacSha1 direct(f);
    EvpHmacSha1 evp;
    for (size_t key_len : {size_t{20}, sizeof(key)}) {
      uint8_t a[kSha1Size];
      uint8_t b[kSha1Size];
      const std::span<const uint8_t> k(key, key_len);
      if (!direct.valid() || !direct.mac(k, message, {}, {}, a) ||
          !evp.mac(k, message, {}, {}, b) || std::memcmp(a, b, kSha1Size) != 0) {
        return std::nullopt;
      }
    }
    return f;
  }();
  return kFunctions ? &*kFunctions : nullptr;
}

/// HMAC-SHA1 for hkdfSha1, one per thread: DirectHmacSha1, or EvpHmacSha1 when the provider
/// functions cannot be used.
class HmacSha1 {
 public:
  static constexpr size_t kSize = kSha1Size;

  HmacSha1() {
    if (const Sha1Functions* functions = directSha1(); functions != nullptr) {
      direct_.emplace(*functions);
      if (!direct_->valid()) direct_.reset();
    }
    if (!direct_) evp_.emplace();
  }

  /// out = HMAC-SHA1(key, a | b | c).
  bool mac(std::span<const uint8_t> key, std::span<const uint8_t> a, std::span<const uint8_t> b,
           std::span<const uint8_t> c, uint8_t out[kSize]) {
    return direct_ ? direct_->mac(key, a, b, c, out) : evp_->mac(key, a, b, c, out);
  }

 private:
  std::optional<DirectHmacSha1> direct_;
  std::optional<EvpHmacSha1> evp_;
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

void blake3KeyedHash(std::span<const uint8_t, 32> key, std::span<const uint8_t> data,
                     std::span<uint8_t> out) {
  blake3_hasher hasher;
  blake3_hasher_init_keyed(&hasher, key.data());
  blake3_hasher_update(&hasher, data.data(), data.size());
  blake3_hasher_finalize(&hasher, out.data(), out.size());
}

namespace {

// BLAKE3 derive_key(context, a || b): first out.size() bytes. `context` is a string literal.
void deriveKey(const char* context, std::span<const uint8_t> a, std::span<const uint8_t> b,
               std::span<uint8_t> out) {
  blake3_hasher hasher;
  blake3_hasher_init_derive_key(&hasher, context);
  blake3_hasher_update(&hasher, a.data(), a.size());
  blake3_hasher_update(&hasher, b.data(), b.size());
  blake3_hasher_finalize(&hasher, out.data(), out.size());
  OPENSSL_cleanse(&hasher, sizeof(hasher));
}

}  // namespace

void sessionSubkey2022(std::span<const uint8_t> psk, std::span<const uint8_t> salt,
                       std::span<uint8_t> out) {
  deriveKey("shadowsocks 2022 session subkey", psk, salt, out);
}

void identitySubkey(std::span<const uint8_t> ipsk, std::span<const uint8_t> salt,
                    std::span<uint8_t> out) {
  deriveKey("shadowsocks 2022 identity subkey", ipsk, salt, out);
}

UserHash userHash(std::span<const uint8_t> psk) {
  UserHash out;
  blake3_hasher hasher;
  blake3_hasher_init(&hasher);
  blake3_hasher_update(&hasher, psk.data(), psk.size());
  blake3_hasher_finalize(&hasher, out.data(), out.size());
  OPENSSL_cleanse(&hasher, sizeof(hasher));
  return out;
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
