// SPDX-License-Identifier: Apache-2.0
#include "crypto/method.h"

#include <array>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shadowrelay::crypto {
namespace {

// 2017 first: allMethods() is the prefix of kAead2017Count entries.
//
// Not here: 2022-blake3-chacha8-poly1305 (optional in SIP022; neither OpenSSL nor BoringSSL has
// ChaCha8, so it would need our own ChaCha8 and Poly1305, and no published vector exists to check
// them against) and 2022-blake3-chacha12-poly1305 (named by the spec, implemented nowhere).
constexpr size_t kAead2017Count = 5;
using S = StreamAlgorithm;
constexpr Edition kStream = Edition::Stream;
constexpr AeadAlgorithm kNoAead = AeadAlgorithm::Aes128Gcm;  // unused by stream methods
constexpr std::array<MethodInfo, 22> kMethods = {{
    {"aes-128-gcm", AeadAlgorithm::Aes128Gcm, 16, 16, 12, kTagSize, true},
    {"aes-192-gcm", AeadAlgorithm::Aes192Gcm, 24, 24, 12, kTagSize, false},
    {"aes-256-gcm", AeadAlgorithm::Aes256Gcm, 32, 32, 12, kTagSize, true},
    {"chacha20-ietf-poly1305", AeadAlgorithm::ChaCha20Poly1305, 32, 32, 12, kTagSize, true},
    {"xchacha20-ietf-poly1305", AeadAlgorithm::XChaCha20Poly1305, 32, 32, 24, kTagSize, false},
    {"2022-blake3-aes-128-gcm", AeadAlgorithm::Aes128Gcm, 16, 16, 12, kTagSize, true,
     Edition::Aead2022},
    {"2022-blake3-aes-256-gcm", AeadAlgorithm::Aes256Gcm, 32, 32, 12, kTagSize, true,
     Edition::Aead2022},
    {"2022-blake3-chacha20-poly1305", AeadAlgorithm::ChaCha20Poly1305, 32, 32, 12, kTagSize, true,
     Edition::Aead2022},
    // Legacy stream methods (§4): key, IV, IV, no tag. Python shadowsocks 2.x and
    // shadowsocks-libev name them so; libev's plain "rc4" and "table" are left out.
    {"aes-128-cfb", kNoAead, 16, 16, 16, 0, false, kStream, S::AesCfb},
    {"aes-192-cfb", kNoAead, 24, 16, 16, 0, false, kStream, S::AesCfb},
    {"aes-256-cfb", kNoAead, 32, 16, 16, 0, false, kStream, S::AesCfb},
    {"aes-128-ctr", kNoAead, 16, 16, 16, 0, false, kStream, S::AesCtr},
    {"aes-192-ctr", kNoAead, 24, 16, 16, 0, false, kStream, S::AesCtr},
    {"aes-256-ctr", kNoAead, 32, 16, 16, 0, false, kStream, S::AesCtr},
    {"camellia-128-cfb", kNoAead, 16, 16, 16, 0, false, kStream, S::CamelliaCfb},
    {"camellia-192-cfb", kNoAead, 24, 16, 16, 0, false, kStream, S::CamelliaCfb},
    {"camellia-256-cfb", kNoAead, 32, 16, 16, 0, false, kStream, S::CamelliaCfb},
    {"bf-cfb", kNoAead, 16, 8, 8, 0, false, kStream, S::BfCfb},
    {"chacha20-ietf", kNoAead, 32, 12, 12, 0, false, kStream, S::ChaCha20Ietf},
    {"chacha20", kNoAead, 32, 8, 8, 0, false, kStream, S::ChaCha20},
    {"salsa20", kNoAead, 32, 8, 8, 0, false, kStream, S::Salsa20},
    {"rc4-md5", kNoAead, 16, 16, 16, 0, false, kStream, S::Rc4Md5},
}};
static_assert(kMethods[kAead2017Count - 1].edition == Edition::Aead2017 &&
              kMethods[kAead2017Count].edition == Edition::Aead2022);

struct IanaAlias {
  absl::string_view iana;
  absl::string_view method;
};
constexpr std::array<IanaAlias, 4> kIanaAliases = {{
    {"aead_aes_128_gcm", "aes-128-gcm"},
    {"aead_aes_192_gcm", "aes-192-gcm"},
    {"aead_aes_256_gcm", "aes-256-gcm"},
    {"aead_chacha20_poly1305", "chacha20-ietf-poly1305"},
}};

}  // namespace

std::span<const MethodInfo> allMethods() { return std::span(kMethods).first(kAead2017Count); }

std::span<const MethodInfo> methodTable() { return kMethods; }

std::string supportedMethodList() {
  return absl::StrJoin(allMethods(), ", ",
                       [](std::string* out, const MethodInfo& m) { absl::StrAppend(out, m.name); });
}

absl::StatusOr<const MethodInfo*> findAnyMethod(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  if (absl::EndsWith(lower, "-auth")) {
    // Python 2.x and old libev: a stream method with one-time auth (OTA), e.g. aes-256-cfb-auth.
    return absl::InvalidArgumentError(absl::StrCat(
        "method \"", name,
        "\": one-time auth (OTA) is deprecated and broken (its per-chunk HMAC does not stop "
        "the redirect attack) and is not supported; use an AEAD method"));
  }
  for (const IanaAlias& alias : kIanaAliases) {
    if (lower == alias.iana) {
      lower = std::string(alias.method);
    }
  }
  for (const MethodInfo& m : kMethods) {
    if (m.name == lower) {
      return &m;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown method \"", name, "\"; supported: ", supportedMethodList()));
}

absl::StatusOr<const MethodInfo*> findMethod(absl::string_view name) {
  absl::StatusOr<const MethodInfo*> m = findAnyMethod(name);
  if (m.ok() && (*m)->edition != Edition::Aead2017) {
    return absl::InvalidArgumentError(
        absl::StrCat("method \"", name, "\" is ",
                     isStream(**m) ? "a legacy stream method (insecure)"
                                   : "a Shadowsocks 2022 method, not an AEAD-2017 one",
                     "; supported: ", supportedMethodList()));
  }
  return m;
}

absl::string_view algorithmName(AeadAlgorithm algorithm) {
  switch (algorithm) {
    case AeadAlgorithm::Aes128Gcm:
      return "AES-128-GCM";
    case AeadAlgorithm::Aes192Gcm:
      return "AES-192-GCM";
    case AeadAlgorithm::Aes256Gcm:
      return "AES-256-GCM";
    case AeadAlgorithm::ChaCha20Poly1305:
      return "ChaCha20-Poly1305";
    case AeadAlgorithm::XChaCha20Poly1305:
      return "XChaCha20-Poly1305";
  }
  return "unknown";
}

}  // namespace shadowrelay::crypto
