// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "tests/testing/hex.h"

namespace shadowrelay::testing {

/// The inputs of PROTOCOL.md §2.8 (shared/vectors/vectors.txt §4), for the 2022 tests.
inline constexpr uint64_t kTs2022 = 1700000000;  // 0x6553f100
/// PSK16 = 000102..0f (base64 AAECAwQFBgcICQoLDA0ODw==), PSK32 = 000102..1f.
inline const std::vector<uint8_t> kPsk16 = range(0, 16);
inline const std::vector<uint8_t> kPsk32 = range(0, 32);
/// The SIP023 user key fffefd..f0 (base64 //79/Pv6+fj39vX08/Lx8A==).
inline const std::vector<uint8_t> kUpsk16 = unhex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0");

/// A method of either edition by name (it must exist).
inline const crypto::MethodInfo& method2022(const char* name) {
  return **crypto::findAnyMethod(name);
}

/// A key list as parsePskList() returns it: iPSK_1..iPSK_k, then the user's PSK.
inline std::vector<crypto::MasterKey> keyList(std::initializer_list<std::vector<uint8_t>> keys) {
  std::vector<crypto::MasterKey> out;
  for (const std::vector<uint8_t>& k : keys) out.emplace_back(k);
  return out;
}

}  // namespace shadowrelay::testing
