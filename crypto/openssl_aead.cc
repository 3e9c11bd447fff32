// SPDX-License-Identifier: Apache-2.0
#include "crypto/openssl_aead.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include <array>
#include <cstring>
#include <optional>

#include "crypto/openssl_dispatch.h"

namespace shadowrelay::crypto {
namespace {

// Fetched once: implicit fetches inside EVP_CipherInit_ex on every message cost a lock and a
// lookup (OpenSSL 3 "performance" notes).
const EVP_CIPHER* fetchCipher(AeadAlgorithm algorithm) {
  static EVP_CIPHER* const kAes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  static EVP_CIPHER* const kAes192 = EVP_CIPHER_fetch(nullptr, "AES-192-GCM", nullptr);
  static EVP_CIPHER* const kAes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  static EVP_CIPHER* const kChaCha = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  switch (algorithm) {
    case AeadAlgorithm::Aes128Gcm:
      return kAes128;
    case AeadAlgorithm::Aes192Gcm:
      return kAes192;
    case AeadAlgorithm::Aes256Gcm:
      return kAes256;
    case AeadAlgorithm::ChaCha20Poly1305:
    case AeadAlgorithm::XChaCha20Poly1305:
      return kChaCha;
  }
  return nullptr;
}

size_t keySize(AeadAlgorithm algorithm) {
  switch (algorithm) {
    case AeadAlgorithm::Aes128Gcm:
      return 16;
    case AeadAlgorithm::Aes192Gcm:
      return 24;
    default:
      return 32;
  }
}

/// Through EVP_CIPHER_CTX: the fallback when the cipher's provider functions cannot be used.
class EvpAead final : public Aead {
 public:
  EvpAead(AeadAlgorithm algorithm, const EVP_CIPHER* cipher)
      : algorithm_(algorithm), cipher_(cipher), ctx_(EVP_CIPHER_CTX_new()) {}
  ~EvpAead() override {
    EVP_CIPHER_CTX_free(ctx_);
    OPENSSL_cleanse(key_.data(), key_.size());
  }
  EvpAead(const EvpAead&) = delete;
  EvpAead& operator=(const EvpAead&) = delete;

  bool rekey(std::span<const uint8_t> key) override {
    if (ctx_ == nullptr || key.size() != keySize(algorithm_)) {
      return false;
    }
    if (algorithm_ == AeadAlgorithm::XChaCha20Poly1305) {
      // The real key is derived per nonce; keep the master key.
      std::memcpy(key_.data(), key.data(), key.size());
      return EVP_CipherInit_ex(ctx_, cipher_, nullptr, nullptr, nullptr, 1) == 1;
    }
    return EVP_CipherInit_ex(ctx_, cipher_, nullptr, key.data(), nullptr, 1) == 1;
  }

  bool seal(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
            std::span<const uint8_t> in, uint8_t* out) override {
    if (!begin(nonce, aad, 1)) {
      return false;
    }
    int len = 0;
    if (!in.empty() && EVP_CipherUpdate(ctx_, out, &len, in.data(), static_cast<int>(in.size())) != 1) {
      return false;
    }
    int final_len = 0;
    if (EVP_CipherFinal_ex(ctx_, out + len, &final_len) != 1) {
      return false;
    }
    return EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kTagSize, out + in.size()) == 1;
  }

  bool open(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
            std::span<const uint8_t> in, uint8_t* out) override {
    if (in.size() < kTagSize) {
      return false;
    }
    const size_t ct_len = in.size() - kTagSize;
    // Copy the tag first: with out == in nothing overwrites it, but keep the contract simple.
    std::array<uint8_t, kTagSize> tag;
    std::memcpy(tag.data(), in.data() + ct_len, kTagSize);
    if (!begin(nonce, aad, 0)) {
      return false;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kTagSize, tag.data()) != 1) {
      return false;
    }
    int len = 0;
    if (ct_len > 0 && EVP_CipherUpdate(ctx_, out, &len, in.data(), static_cast<int>(ct_len)) != 1) {
      return false;
    }
    int final_len = 0;
    return EVP_CipherFinal_ex(ctx_, out + len, &final_len) == 1;
  }

 private:
  bool begin(std::span<const uint8_t> nonce, std::span<const uint8_t> aad, int enc) {
    if (algorithm_ == AeadAlgorithm::XChaCha20Poly1305) {
      if (nonce.size() != 24) {
        return false;
      }
      std::array<uint8_t, 32> subkey;
      hchacha20(key_.data(), nonce.data(), subkey.data());
      std::array<uint8_t, 12> chacha_nonce{};
      std::memcpy(chacha_nonce.data() + 4, nonce.data() + 16, 8);
      const bool ok =
          EVP_CipherInit_ex(ctx_, nullptr, nullptr, subkey.data(), chacha_nonce.data(), enc) == 1;
      OPENSSL_cleanse(subkey.data(), subkey.size());
      if (!ok) {
        return false;
      }
    } else {
      if (nonce.size() != 12 ||
          EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce.data(), enc) != 1) {
        return false;
      }
    }
    int len = 0;
    return aad.empty() ||
           EVP_CipherUpdate(ctx_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1;
  }

  AeadAlgorithm algorithm_;
  const EVP_CIPHER* cipher_;
  EVP_CIPHER_CTX* ctx_;
  std::array<uint8_t, 32> key_{};  // only for XChaCha20-Poly1305
};

/// The functions of the provider implementation behind a fetched EVP_CIPHER (provider-cipher(7)),
/// looked up once (openssl_dispatch.h). EVP_CipherInit_ex asks the provider for the IV length on
/// every message (a parameter round trip that finds names with strcmp), and EVP_CIPHER_CTX_ctrl
/// turns each tag get or set into parameters as well. With eight AEAD calls per proxied HTTP
/// request, those two took 5.6% of the relay's CPU in the keep-alive bench (perf), mostly that
/// wrapping. The provider's own functions do the same work without it: about 60 ns less per
/// ChaCha20-Poly1305 message and 100 ns less per AES-GCM message, and a new key is set on the
/// kept context instead of resetting it.
struct CipherFunctions {
  void* provctx = nullptr;
  OSSL_FUNC_cipher_newctx_fn* newctx = nullptr;
  OSSL_FUNC_cipher_freectx_fn* freectx = nullptr;
  OSSL_FUNC_cipher_encrypt_init_fn* einit = nullptr;
  OSSL_FUNC_cipher_decrypt_init_fn* dinit = nullptr;
  OSSL_FUNC_cipher_update_fn* update = nullptr;
  OSSL_FUNC_cipher_final_fn* final = nullptr;
  OSSL_FUNC_cipher_get_ctx_params_fn* get_ctx_params = nullptr;
  OSSL_FUNC_cipher_set_ctx_params_fn* set_ctx_params = nullptr;

  bool complete() const {
    return newctx != nullptr && freectx != nullptr && einit != nullptr && dinit != nullptr &&
           update != nullptr && final != nullptr && get_ctx_params != nullptr &&
           set_ctx_params != nullptr;
  }
};

std::optional<CipherFunctions> lookUpFunctions(const EVP_CIPHER* cipher) {
  if (cipher == nullptr) {
    return std::nullopt;
  }
  const OSSL_PROVIDER* provider = EVP_CIPHER_get0_provider(cipher);
  CipherFunctions f;
  const bool found = visitProviderFunctions(
      provider, OSSL_OP_CIPHER, EVP_CIPHER_get0_name(cipher), [&f](const OSSL_DISPATCH& d) {
        switch (d.function_id) {
          case OSSL_FUNC_CIPHER_NEWCTX:
            f.newctx = OSSL_FUNC_cipher_newctx(&d);
            break;
          case OSSL_FUNC_CIPHER_FREECTX:
            f.freectx = OSSL_FUNC_cipher_freectx(&d);
            break;
          case OSSL_FUNC_CIPHER_ENCRYPT_INIT:
            f.einit = OSSL_FUNC_cipher_encrypt_init(&d);
            break;
          case OSSL_FUNC_CIPHER_DECRYPT_INIT:
            f.dinit = OSSL_FUNC_cipher_decrypt_init(&d);
            break;
          case OSSL_FUNC_CIPHER_UPDATE:
            f.update = OSSL_FUNC_cipher_update(&d);
            break;
          case OSSL_FUNC_CIPHER_FINAL:
            f.final = OSSL_FUNC_cipher_final(&d);
            break;
          case OSSL_FUNC_CIPHER_GET_CTX_PARAMS:
            f.get_ctx_params = OSSL_FUNC_cipher_get_ctx_params(&d);
            break;
          case OSSL_FUNC_CIPHER_SET_CTX_PARAMS:
            f.set_ctx_params = OSSL_FUNC_cipher_set_ctx_params(&d);
            break;
          default:
            break;
        }
      });
  if (!found) {
    return std::nullopt;
  }
  f.provctx = OSSL_PROVIDER_get0_provider_ctx(provider);
  if (!f.complete()) {
    return std::nullopt;
  }
  return f;
}

/// Calls the cipher's provider functions directly (CipherFunctions); same contract as EvpAead.
class ProviderAead final : public Aead {
 public:
  ProviderAead(AeadAlgorithm algorithm, const CipherFunctions& functions)
      : algorithm_(algorithm), f_(functions), ctx_(f_.newctx(f_.provctx)) {}
  ~ProviderAead() override {
    if (ctx_ != nullptr) {
      f_.freectx(ctx_);  // clears the key schedule
    }
    OPENSSL_cleanse(key_.data(), key_.size());
  }
  ProviderAead(const ProviderAead&) = delete;
  ProviderAead& operator=(const ProviderAead&) = delete;

  bool rekey(std::span<const uint8_t> key) override {
    if (ctx_ == nullptr || key.size() != keySize(algorithm_)) {
      return false;
    }
    if (algorithm_ == AeadAlgorithm::XChaCha20Poly1305) {
      // The real key is derived per nonce; keep the master key.
      std::memcpy(key_.data(), key.data(), key.size());
      return true;
    }
    // A new key on the kept context: no reset, no new provider context.
    return f_.einit(ctx_, key.data(), key.size(), nullptr, 0, nullptr) == 1;
  }

  bool seal(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
            std::span<const uint8_t> in, uint8_t* out) override {
    if (!begin(nonce, aad, f_.einit)) {
      return false;
    }
    size_t len = 0;
    if (!in.empty() && f_.update(ctx_, out, &len, in.size(), in.data(), in.size()) != 1) {
      return false;
    }
    size_t final_len = 0;
    if (f_.final(ctx_, out + len, &final_len, 0) != 1) {
      return false;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out + in.size(), kTagSize),
        OSSL_PARAM_construct_end()};
    return f_.get_ctx_params(ctx_, params) == 1;
  }

  bool open(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
            std::span<const uint8_t> in, uint8_t* out) override {
    if (in.size() < kTagSize) {
      return false;
    }
    const size_t ct_len = in.size() - kTagSize;
    std::array<uint8_t, kTagSize> tag;
    std::memcpy(tag.data(), in.data() + ct_len, kTagSize);
    if (!begin(nonce, aad, f_.dinit)) {
      return false;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag.data(), kTagSize),
        OSSL_PARAM_construct_end()};
    if (f_.set_ctx_params(ctx_, params) != 1) {
      return false;
    }
    size_t len = 0;
    if (ct_len > 0 && f_.update(ctx_, out, &len, ct_len, in.data(), ct_len) != 1) {
      return false;
    }
    size_t final_len = 0;
    return f_.final(ctx_, out + len, &final_len, 0) == 1;
  }

  bool valid() const { return ctx_ != nullptr; }

 private:
  // `init` is einit or dinit (same signature).
  bool begin(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
             OSSL_FUNC_cipher_encrypt_init_fn* init) {
    if (algorithm_ == AeadAlgorithm::XChaCha20Poly1305) {
      if (nonce.size() != 24) {
        return false;
      }
      std::array<uint8_t, 32> subkey;
      hchacha20(key_.data(), nonce.data(), subkey.data());
      std::array<uint8_t, 12> chacha_nonce{};
      std::memcpy(chacha_nonce.data() + 4, nonce.data() + 16, 8);
      const bool ok = init(ctx_, subkey.data(), subkey.size(), chacha_nonce.data(),
                           chacha_nonce.size(), nullptr) == 1;
      OPENSSL_cleanse(subkey.data(), subkey.size());
      if (!ok) {
        return false;
      }
    } else if (nonce.size() != 12 ||
               init(ctx_, nullptr, 0, nonce.data(), nonce.size(), nullptr) != 1) {
      return false;
    }
    size_t len = 0;
    return aad.empty() || f_.update(ctx_, nullptr, &len, aad.size(), aad.data(), aad.size()) == 1;
  }

  AeadAlgorithm algorithm_;
  const CipherFunctions& f_;
  void* ctx_;
  std::array<uint8_t, 32> key_{};  // only for XChaCha20-Poly1305
};

/// The provider functions for `algorithm`, or nullptr when EVP must be used: a function is
/// missing, or the direct path does not produce EVP's ciphertext and tag for a test message.
const CipherFunctions* directFunctions(AeadAlgorithm algorithm) {
  struct Entry {
    std::optional<CipherFunctions> functions;
    bool usable = false;
  };
  static const std::array<Entry, 5> kEntries = [] {
    std::array<Entry, 5> entries;
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto a = static_cast<AeadAlgorithm>(i);
      entries[i].functions = lookUpFunctions(fetchCipher(a));
      if (!entries[i].functions) {
        continue;
      }
      std::array<uint8_t, 32> key;
      std::array<uint8_t, 24> nonce;
      std::array<uint8_t, 48> plain;
      for (size_t k = 0; k < key.size(); ++k) key[k] = static_cast<uint8_t>(k + 1);
      for (size_t k = 0; k < nonce.size(); ++k) nonce[k] = static_cast<uint8_t>(0x40 + k);
      for (size_t k = 0; k < plain.size(); ++k) plain[k] = static_cast<uint8_t>(0x80 + k);
      const std::span<const uint8_t> key_span(key.data(), keySize(a));
      const std::span<const uint8_t> nonce_span(
          nonce.data(), a == AeadAlgorithm::XChaCha20Poly1305 ? 24 : 12);
      const uint8_t aad[3] = {1, 2, 3};
      std::array<uint8_t, 48 + kTagSize> via_evp{};
      std::array<uint8_t, 48 + kTagSize> via_provider{};
      std::array<uint8_t, 48> opened{};
      EvpAead evp(a, fetchCipher(a));
      ProviderAead direct(a, *entries[i].functions);
      entries[i].usable = direct.valid() && evp.rekey(key_span) && direct.rekey(key_span) &&
                          evp.seal(nonce_span, aad, plain, via_evp.data()) &&
                          direct.seal(nonce_span, aad, plain, via_provider.data()) &&
                          via_evp == via_provider &&
                          direct.open(nonce_span, aad, via_provider, opened.data()) &&
                          opened == plain;
    }
    return entries;
  }();
  const Entry& entry = kEntries[static_cast<size_t>(algorithm)];
  return entry.usable ? &*entry.functions : nullptr;
}

/// AES-{128,192,256}-ECB with padding off: each update of one block is one block operation.
class OpensslAes final : public BlockCipher {
 public:
  OpensslAes() : enc_(EVP_CIPHER_CTX_new()), dec_(EVP_CIPHER_CTX_new()) {}
  ~OpensslAes() override {
    EVP_CIPHER_CTX_free(enc_);  // clears the key schedules
    EVP_CIPHER_CTX_free(dec_);
  }
  OpensslAes(const OpensslAes&) = delete;
  OpensslAes& operator=(const OpensslAes&) = delete;

  bool init(std::span<const uint8_t> key) {
    static EVP_CIPHER* const kEcb128 = EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr);
    static EVP_CIPHER* const kEcb192 = EVP_CIPHER_fetch(nullptr, "AES-192-ECB", nullptr);
    static EVP_CIPHER* const kEcb256 = EVP_CIPHER_fetch(nullptr, "AES-256-ECB", nullptr);
    const EVP_CIPHER* ecb = key.size() == 16   ? kEcb128
                            : key.size() == 24 ? kEcb192
                            : key.size() == 32 ? kEcb256
                                               : nullptr;
    return ecb != nullptr && enc_ != nullptr && dec_ != nullptr &&
           EVP_EncryptInit_ex(enc_, ecb, nullptr, key.data(), nullptr) == 1 &&
           EVP_CIPHER_CTX_set_padding(enc_, 0) == 1 &&
           EVP_DecryptInit_ex(dec_, ecb, nullptr, key.data(), nullptr) == 1 &&
           EVP_CIPHER_CTX_set_padding(dec_, 0) == 1;
  }

  bool encrypt(InBlock in, OutBlock out) override { return update(enc_, in, out); }
  bool decrypt(InBlock in, OutBlock out) override { return update(dec_, in, out); }

 private:
  static bool update(EVP_CIPHER_CTX* ctx, InBlock in, OutBlock out) {
    int len = 0;
    return EVP_CipherUpdate(ctx, out.data(), &len, in.data(), kBlockSize) == 1 &&
           len == static_cast<int>(kBlockSize);
  }

  EVP_CIPHER_CTX* enc_;
  EVP_CIPHER_CTX* dec_;
};

inline uint32_t rotl(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

inline void quarterRound(uint32_t& a, uint32_t& b, uint32_t& c, uint32_t& d) {
  a += b;
  d = rotl(d ^ a, 16);
  c += d;
  b = rotl(b ^ c, 12);
  a += b;
  d = rotl(d ^ a, 8);
  c += d;
  b = rotl(b ^ c, 7);
}

inline uint32_t load32le(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

inline void store32le(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

}  // namespace

void hchacha20(const uint8_t key[32], const uint8_t input[16], uint8_t out[32]) {
  uint32_t s[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
  for (int i = 0; i < 8; ++i) {
    s[4 + i] = load32le(key + 4 * i);
  }
  for (int i = 0; i < 4; ++i) {
    s[12 + i] = load32le(input + 4 * i);
  }
  for (int round = 0; round < 10; ++round) {
    quarterRound(s[0], s[4], s[8], s[12]);
    quarterRound(s[1], s[5], s[9], s[13]);
    quarterRound(s[2], s[6], s[10], s[14]);
    quarterRound(s[3], s[7], s[11], s[15]);
    quarterRound(s[0], s[5], s[10], s[15]);
    quarterRound(s[1], s[6], s[11], s[12]);
    quarterRound(s[2], s[7], s[8], s[13]);
    quarterRound(s[3], s[4], s[9], s[14]);
  }
  for (int i = 0; i < 4; ++i) {
    store32le(out + 4 * i, s[i]);
    store32le(out + 16 + 4 * i, s[12 + i]);
  }
  OPENSSL_cleanse(s, sizeof(s));
}

bool OpensslProvider::supports(AeadAlgorithm algorithm) const {
  return fetchCipher(algorithm) != nullptr;
}

bool OpensslProvider::direct(AeadAlgorithm algorithm) const {
  return path_ == Path::Direct && directFunctions(algorithm) != nullptr;
}

AeadPtr OpensslProvider::create(AeadAlgorithm algorithm, std::span<const uint8_t> key) const {
  const EVP_CIPHER* cipher = fetchCipher(algorithm);
  if (cipher == nullptr) {
    return nullptr;
  }
  AeadPtr aead;
  const CipherFunctions* functions = path_ == Path::Direct ? directFunctions(algorithm) : nullptr;
  if (functions != nullptr) {
    aead = std::make_unique<ProviderAead>(algorithm, *functions);
  } else {
    aead = std::make_unique<EvpAead>(algorithm, cipher);
  }
  if (!aead->rekey(key)) {
    return nullptr;
  }
  return aead;
}

BlockCipherPtr OpensslProvider::createAes(std::span<const uint8_t> key) const {
  auto aes = std::make_unique<OpensslAes>();
  if (!aes->init(key)) {
    return nullptr;
  }
  return aes;
}

const AeadProvider& opensslProvider() {
  static const OpensslProvider provider;
  return provider;
}

}  // namespace shadowrelay::crypto
