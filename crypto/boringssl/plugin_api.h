// SPDX-License-Identifier: Apache-2.0
// The C interface between the host and the BoringSSL plugin (a shared object loaded with
// RTLD_LOCAL | RTLD_DEEPBIND, so BoringSSL's symbols never interpose on OpenSSL's; see
// ARCHITECTURE.md "Crypto providers"). No OpenSSL or BoringSSL type crosses it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHADOWRELAY_BORINGSSL_API_VERSION 2u
#define SHADOWRELAY_BORINGSSL_API_SYMBOL "shadowrelay_boringssl_api"

/* Algorithm numbers are crypto::AeadAlgorithm's values. All functions return 1 on success.
   Version 2 added the AES block functions (aes_*): one 16-byte block, no mode, no padding;
   aes_create takes a 16-, 24- or 32-byte key; `out` may alias `in`. */
struct ShadowrelayBoringsslApi {
  uint32_t version;
  const char* (*library_version)(void);
  int (*supports)(int algorithm);
  void* (*create)(int algorithm, const uint8_t* key, size_t key_len);
  int (*rekey)(void* ctx, const uint8_t* key, size_t key_len);
  void (*destroy)(void* ctx);
  int (*seal)(void* ctx, const uint8_t* nonce, size_t nonce_len, const uint8_t* aad,
              size_t aad_len, const uint8_t* in, size_t in_len, uint8_t* out);
  int (*open)(void* ctx, const uint8_t* nonce, size_t nonce_len, const uint8_t* aad,
              size_t aad_len, const uint8_t* in, size_t in_len, uint8_t* out);
  void* (*aes_create)(const uint8_t* key, size_t key_len);
  void (*aes_destroy)(void* ctx);
  int (*aes_encrypt)(void* ctx, const uint8_t* in, uint8_t* out);
  int (*aes_decrypt)(void* ctx, const uint8_t* in, uint8_t* out);
};

typedef const struct ShadowrelayBoringsslApi* (*ShadowrelayBoringsslApiFn)(void);

#ifdef __cplusplus
}
#endif
