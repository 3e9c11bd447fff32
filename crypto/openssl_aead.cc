// SPDX-License-Identifier: Apache-2.0
#include "crypto/openssl_aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstring>

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

class OpensslAead final : public Aead {
 public:
  OpensslAead(AeadAlgorithm algorithm, const EVP_CIPHER* cipher)
      : algorithm_(algorithm), cipher_(cipher), ctx_(EVP_CIPHER_CTX_new()) {}
  ~OpensslAead() override {
    EVP_CIPHER_CTX_free(ctx_);
    OPENSSL_cleanse(key_.data(), key_.size());
  }
  OpensslAead(const OpensslAead&) = delete;
  OpensslAead& operator=(const OpensslAead&) = delete;

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

AeadPtr OpensslProvider::create(AeadAlgorithm algorithm, std::span<const uint8_t> key) const {
  const EVP_CIPHER* cipher = fetchCipher(algorithm);
  if (cipher == nullptr) {
    return nullptr;
  }
  auto aead = std::make_unique<OpensslAead>(algorithm, cipher);
  if (!aead->rekey(key)) {
    return nullptr;
  }
  return aead;
}

const AeadProvider& opensslProvider() {
  static const OpensslProvider provider;
  return provider;
}

}  // namespace shadowrelay::crypto
