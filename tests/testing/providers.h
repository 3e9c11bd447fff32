// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <memory>
#include <vector>

#include "crypto/aead.h"
#include "crypto/boringssl_provider.h"
#include "crypto/openssl_aead.h"
#include "gtest/gtest.h"

namespace shadowrelay::testing {

/// Every provider this build must have: OpenSSL, and BoringSSL except in sanitizer builds
/// (they refuse RTLD_DEEPBIND). A BoringSSL plugin that fails to load fails the test.
inline std::vector<const crypto::AeadProvider*> allProviders() {
  std::vector<const crypto::AeadProvider*> out = {&crypto::opensslProvider()};
#if !defined(SHADOWRELAY_SANITIZER)
  static std::unique_ptr<crypto::AeadProvider> boring = [] {
    auto p = crypto::loadBoringsslProvider();
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }();
  if (boring != nullptr) {
    out.push_back(boring.get());
  }
#endif
  return out;
}

}  // namespace shadowrelay::testing
