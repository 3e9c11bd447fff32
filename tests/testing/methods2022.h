// SPDX-License-Identifier: Apache-2.0
#pragma once
// Parameterized tests over the Shadowsocks 2022 methods the relay serves.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "crypto/key_derivation.h"
#include "gtest/gtest.h"

namespace shadowrelay::testing {

/// INSTANTIATE_TEST_SUITE_P(Methods, Suite, methods2022(), methodParamName): one instance per
/// 2022 method, named after it ("2022_blake3_aes_128_gcm").
inline auto methods2022() {
  return ::testing::Values("2022-blake3-aes-128-gcm", "2022-blake3-aes-256-gcm",
                           "2022-blake3-chacha20-poly1305");
}

inline std::string methodParamName(const ::testing::TestParamInfo<const char*>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name;
}

/// A key of `size` bytes seed, seed + 1, ... (a PSK of the method's size).
inline crypto::MasterKey sequentialKey(size_t size, uint8_t seed) {
  std::vector<uint8_t> key(size);
  for (size_t i = 0; i < size; ++i) key[i] = static_cast<uint8_t>(seed + i);
  return crypto::MasterKey(key);
}

}  // namespace shadowrelay::testing
