// SPDX-License-Identifier: Apache-2.0
// The BoringSSL AEAD plugin: built as its own shared object against android-libboringssl.
#include <openssl/aead.h>
#include <openssl/aes.h>
#include <openssl/crypto.h>

#include <new>

#include "crypto/boringssl/plugin_api.h"

namespace {

constexpr size_t kTag = 16;

// Same numbering as shadowrelay::crypto::AeadAlgorithm.
const EVP_AEAD* aeadFor(int algorithm) {
  switch (algorithm) {
    case 0:
      return EVP_aead_aes_128_gcm();
    case 1:
      return EVP_aead_aes_192_gcm();
    case 2:
      return EVP_aead_aes_256_gcm();
    case 3:
      return EVP_aead_chacha20_poly1305();
    case 4:
      return EVP_aead_xchacha20_poly1305();
    default:
      return nullptr;
  }
}

struct Context {
  const EVP_AEAD* aead;
  EVP_AEAD_CTX ctx;
};

const char* libraryVersion() { return "BoringSSL (android-libboringssl)"; }

int supports(int algorithm) { return aeadFor(algorithm) != nullptr ? 1 : 0; }

void* create(int algorithm, const uint8_t* key, size_t key_len) {
  const EVP_AEAD* aead = aeadFor(algorithm);
  if (aead == nullptr || EVP_AEAD_key_length(aead) != key_len) {
    return nullptr;
  }
  auto* c = new (std::nothrow) Context;
  if (c == nullptr) {
    return nullptr;
  }
  c->aead = aead;
  EVP_AEAD_CTX_zero(&c->ctx);
  if (EVP_AEAD_CTX_init(&c->ctx, aead, key, key_len, kTag, nullptr) != 1) {
    delete c;
    return nullptr;
  }
  return c;
}

int rekey(void* p, const uint8_t* key, size_t key_len) {
  auto* c = static_cast<Context*>(p);
  if (EVP_AEAD_key_length(c->aead) != key_len) {
    return 0;
  }
  EVP_AEAD_CTX_cleanup(&c->ctx);
  EVP_AEAD_CTX_zero(&c->ctx);
  return EVP_AEAD_CTX_init(&c->ctx, c->aead, key, key_len, kTag, nullptr);
}

void destroy(void* p) {
  auto* c = static_cast<Context*>(p);
  if (c != nullptr) {
    EVP_AEAD_CTX_cleanup(&c->ctx);
    delete c;
  }
}

int seal(void* p, const uint8_t* nonce, size_t nonce_len, const uint8_t* aad, size_t aad_len,
         const uint8_t* in, size_t in_len, uint8_t* out) {
  auto* c = static_cast<Context*>(p);
  size_t out_len = 0;
  return EVP_AEAD_CTX_seal(&c->ctx, out, &out_len, in_len + kTag, nonce, nonce_len, in, in_len,
                           aad, aad_len);
}

int open(void* p, const uint8_t* nonce, size_t nonce_len, const uint8_t* aad, size_t aad_len,
         const uint8_t* in, size_t in_len, uint8_t* out) {
  auto* c = static_cast<Context*>(p);
  if (in_len < kTag) {
    return 0;
  }
  size_t out_len = 0;
  return EVP_AEAD_CTX_open(&c->ctx, out, &out_len, in_len - kTag, nonce, nonce_len, in, in_len,
                           aad, aad_len);
}

struct AesKeys {
  AES_KEY encrypt;
  AES_KEY decrypt;
};

void* aesCreate(const uint8_t* key, size_t key_len) {
  if (key_len != 16 && key_len != 24 && key_len != 32) {
    return nullptr;
  }
  auto* k = new (std::nothrow) AesKeys;
  if (k == nullptr) {
    return nullptr;
  }
  const unsigned bits = static_cast<unsigned>(key_len * 8);
  if (AES_set_encrypt_key(key, bits, &k->encrypt) != 0 ||
      AES_set_decrypt_key(key, bits, &k->decrypt) != 0) {
    OPENSSL_cleanse(k, sizeof(*k));
    delete k;
    return nullptr;
  }
  return k;
}

void aesDestroy(void* p) {
  auto* k = static_cast<AesKeys*>(p);
  if (k != nullptr) {
    OPENSSL_cleanse(k, sizeof(*k));
    delete k;
  }
}

int aesEncrypt(void* p, const uint8_t* in, uint8_t* out) {
  AES_encrypt(in, out, &static_cast<AesKeys*>(p)->encrypt);
  return 1;
}

int aesDecrypt(void* p, const uint8_t* in, uint8_t* out) {
  AES_decrypt(in, out, &static_cast<AesKeys*>(p)->decrypt);
  return 1;
}

constexpr ShadowrelayBoringsslApi kApi = {
    SHADOWRELAY_BORINGSSL_API_VERSION,
    libraryVersion,
    supports,
    create,
    rekey,
    destroy,
    seal,
    open,
    aesCreate,
    aesDestroy,
    aesEncrypt,
    aesDecrypt,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const ShadowrelayBoringsslApi*
shadowrelay_boringssl_api(void) {
  return &kApi;
}
