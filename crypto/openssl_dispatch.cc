// SPDX-License-Identifier: Apache-2.0
#include "crypto/openssl_dispatch.h"

#include <openssl/provider.h>
#include <strings.h>

#include <cstring>

namespace shadowrelay::crypto {
namespace {

/// Does the colon-separated list `names` (an OSSL_ALGORITHM's) contain `name`?
bool namesInclude(const char* names, const char* name) {
  const size_t len = std::strlen(name);
  for (const char* p = names; p != nullptr && *p != '\0';) {
    const char* end = std::strchr(p, ':');
    const size_t n = end == nullptr ? std::strlen(p) : static_cast<size_t>(end - p);
    if (n == len && ::strncasecmp(p, name, n) == 0) {
      return true;
    }
    p = end == nullptr ? nullptr : end + 1;
  }
  return false;
}

}  // namespace

bool visitProviderFunctions(const OSSL_PROVIDER* provider, int operation, const char* name,
                            absl::FunctionRef<void(const OSSL_DISPATCH&)> visit) {
  if (provider == nullptr || name == nullptr) {
    return false;
  }
  int no_store = 0;
  const OSSL_ALGORITHM* algorithms =
      OSSL_PROVIDER_query_operation(provider, operation, &no_store);
  if (algorithms == nullptr) {
    return false;
  }
  const OSSL_ALGORITHM* match = nullptr;
  int matches = 0;
  for (const OSSL_ALGORITHM* a = algorithms; a->algorithm_names != nullptr; ++a) {
    if (namesInclude(a->algorithm_names, name)) {
      match = a;
      ++matches;
    }
  }
  if (matches == 1) {
    for (const OSSL_DISPATCH* d = match->implementation; d->function_id != 0; ++d) {
      visit(*d);
    }
  }
  OSSL_PROVIDER_unquery_operation(provider, operation, algorithms);
  return matches == 1;
}

}  // namespace shadowrelay::crypto
