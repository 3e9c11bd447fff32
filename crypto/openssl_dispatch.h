// SPDX-License-Identifier: Apache-2.0
#pragma once
// An internal header of crypto/: OpenSSL 3 provider functions called without EVP's wrapping.

#include <openssl/core.h>
#include <openssl/types.h>

#include "absl/functional/function_ref.h"

namespace shadowrelay::crypto {

/// Calls `visit` with each function (OSSL_DISPATCH entry) of the implementation that `provider`
/// offers for `operation` (OSSL_OP_CIPHER, OSSL_OP_DIGEST, ...) under the name `name`
/// (compared case-insensitively with each of the implementation's names), then releases the
/// query. The function pointers stay valid while the provider is loaded, which a fetched
/// algorithm of that provider ensures.
///
/// EVP looks parameters up by name (strcmp) on many calls and re-creates provider contexts on
/// some; for the few operations the relay runs per connection or per chunk, calling the
/// provider's functions directly (provider-base(7)) skips that. Callers keep EVP as a fallback.
///
/// @return false (nothing visited) if the provider does not offer exactly one implementation
/// under that name (with several, told apart by properties, which one EVP fetched is unknown).
bool visitProviderFunctions(const OSSL_PROVIDER* provider, int operation, const char* name,
                            absl::FunctionRef<void(const OSSL_DISPATCH&)> visit);

}  // namespace shadowrelay::crypto
