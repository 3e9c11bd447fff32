// SPDX-License-Identifier: Apache-2.0
#include "crypto/legacy_stream.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

namespace shadowrelay::crypto {
namespace {

// Blowfish and RC4 live only in OpenSSL 3's legacy provider. Loading it into the default
// library context would offer them to everything else in the process (gRPC's TLS included), so
// it is loaded into a context of its own that only these two ciphers are fetched from. Made
// once, on first use (a C++ static: thread-safe), and kept for the life of the process.
OSSL_LIB_CTX* legacyContext() {
  static OSSL_LIB_CTX* const kContext = [] {
    OSSL_LIB_CTX* ctx = OSSL_LIB_CTX_new();
    if (ctx == nullptr) return ctx;
    if (OSSL_PROVIDER_load(ctx, "legacy") == nullptr ||
        OSSL_PROVIDER_load(ctx, "default") == nullptr) {
      OSSL_LIB_CTX_free(ctx);
      return static_cast<OSSL_LIB_CTX*>(nullptr);
    }
    return ctx;
  }();
  return kContext;
}

struct EvpName {
  StreamAlgorithm algorithm;
  size_t key_size;
  const char* name;
  bool legacy;  // in the legacy provider's context
};
constexpr std::array<EvpName, 11> kEvpNames = {{
    {StreamAlgorithm::AesCfb, 16, "AES-128-CFB", false},
    {StreamAlgorithm::AesCfb, 24, "AES-192-CFB", false},
    {StreamAlgorithm::AesCfb, 32, "AES-256-CFB", false},
    {StreamAlgorithm::AesCtr, 16, "AES-128-CTR", false},
    {StreamAlgorithm::AesCtr, 24, "AES-192-CTR", false},
    {StreamAlgorithm::AesCtr, 32, "AES-256-CTR", false},
    {StreamAlgorithm::CamelliaCfb, 16, "CAMELLIA-128-CFB", false},
    {StreamAlgorithm::CamelliaCfb, 24, "CAMELLIA-192-CFB", false},
    {StreamAlgorithm::CamelliaCfb, 32, "CAMELLIA-256-CFB", false},
    {StreamAlgorithm::BfCfb, 16, "BF-CFB", true},
    {StreamAlgorithm::Rc4Md5, 16, "RC4", true},
}};

// Fetched once: EVP's implicit fetch on every init costs a lock and a lookup.
const EVP_CIPHER* opensslCipher(const MethodInfo& m) {
  static const std::array<EVP_CIPHER*, kEvpNames.size()> kFetched = [] {
    std::array<EVP_CIPHER*, kEvpNames.size()> fetched{};
    for (size_t i = 0; i < kEvpNames.size(); ++i) {
      OSSL_LIB_CTX* ctx = kEvpNames[i].legacy ? legacyContext() : nullptr;
      if (!kEvpNames[i].legacy || ctx != nullptr) {
        fetched[i] = EVP_CIPHER_fetch(ctx, kEvpNames[i].name, nullptr);
      }
    }
    return fetched;
  }();
  for (size_t i = 0; i < kEvpNames.size(); ++i) {
    if (kEvpNames[i].algorithm == m.stream && kEvpNames[i].key_size == m.key_size) {
      return kFetched[i];
    }
  }
  return nullptr;
}

/// AES/Camellia CFB and CTR, Blowfish CFB, RC4: EVP_CIPHER_CTX keeps the chain (CFB), the
/// counter and the position in the block between calls.
class EvpStream final : public StreamCipher {
 public:
  EvpStream() : ctx_(EVP_CIPHER_CTX_new()) {}
  ~EvpStream() override { EVP_CIPHER_CTX_free(ctx_); }

  bool init(const EVP_CIPHER* cipher, std::span<const uint8_t> key, std::span<const uint8_t> iv,
            bool encrypt) {
    if (ctx_ == nullptr || cipher == nullptr) return false;
    // Blowfish and RC4 take variable-length keys: set the length before the key (16 bytes,
    // which is also their default).
    if (EVP_CipherInit_ex2(ctx_, cipher, nullptr, nullptr, encrypt ? 1 : 0, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_key_length(ctx_, static_cast<int>(key.size())) != 1) {
      return false;
    }
    return EVP_CipherInit_ex2(ctx_, nullptr, key.data(), iv.empty() ? nullptr : iv.data(), -1,
                              nullptr) == 1;
  }

  bool apply(std::span<const uint8_t> in, uint8_t* out) override {
    size_t done = 0;
    while (done < in.size()) {
      const int n = static_cast<int>(std::min<size_t>(in.size() - done, INT_MAX / 2));
      int written = 0;
      if (EVP_CipherUpdate(ctx_, out + done, &written, in.data() + done, n) != 1 ||
          written != n) {
        return false;
      }
      done += static_cast<size_t>(n);
    }
    return true;
  }

 private:
  EVP_CIPHER_CTX* ctx_;
};

/// libsodium's ChaCha20 (IETF: 96-bit nonce, 32-bit block counter; DJB: 64-bit nonce and
/// counter) and Salsa20. Their *_xor_ic functions start at a block boundary, so the rest of a
/// block's keystream is kept for the next call (as libev does with its byte counter).
class SodiumStream final : public StreamCipher {
 public:
  SodiumStream(StreamAlgorithm algorithm, std::span<const uint8_t> key,
               std::span<const uint8_t> iv)
      : algorithm_(algorithm) {
    std::copy(key.begin(), key.end(), key_.begin());
    std::copy(iv.begin(), iv.end(), iv_.begin());
  }
  ~SodiumStream() override {
    sodium_memzero(key_.data(), key_.size());
    sodium_memzero(keystream_.data(), keystream_.size());
  }

  bool apply(std::span<const uint8_t> in, uint8_t* out) override {
    size_t pos = 0;
    for (; used_ < kBlock && pos < in.size(); ++pos, ++used_) out[pos] = in[pos] ^ keystream_[used_];
    const size_t whole = (in.size() - pos) / kBlock * kBlock;
    if (whole > 0) {
      if (!xorAt(in.data() + pos, out + pos, whole)) return false;
      block_ += whole / kBlock;
      pos += whole;
    }
    if (pos < in.size()) {
      keystream_.fill(0);
      if (!xorAt(keystream_.data(), keystream_.data(), kBlock)) return false;
      ++block_;
      used_ = 0;
      for (; pos < in.size(); ++pos, ++used_) out[pos] = in[pos] ^ keystream_[used_];
    }
    return true;
  }

 private:
  static constexpr size_t kBlock = 64;

  bool xorAt(const uint8_t* in, uint8_t* out, size_t n) {
    switch (algorithm_) {
      case StreamAlgorithm::ChaCha20Ietf:
        // A 32-bit block counter: 256 GiB per direction, as in libev.
        if (block_ + n / kBlock > UINT32_MAX) return false;
        return crypto_stream_chacha20_ietf_xor_ic(out, in, n, iv_.data(),
                                                  static_cast<uint32_t>(block_),
                                                  key_.data()) == 0;
      case StreamAlgorithm::ChaCha20:
        return crypto_stream_chacha20_xor_ic(out, in, n, iv_.data(), block_, key_.data()) == 0;
      case StreamAlgorithm::Salsa20:
        return crypto_stream_salsa20_xor_ic(out, in, n, iv_.data(), block_, key_.data()) == 0;
      default:
        return false;
    }
  }

  const StreamAlgorithm algorithm_;
  std::array<uint8_t, 32> key_{};
  std::array<uint8_t, 12> iv_{};
  std::array<uint8_t, kBlock> keystream_{};  // of block_ - 1, used up to used_
  size_t used_ = kBlock;
  uint64_t block_ = 0;  // the next block's counter
};

}  // namespace

absl::string_view streamLibrary(const MethodInfo& method) {
  switch (method.stream) {
    case StreamAlgorithm::None:
      return "";
    case StreamAlgorithm::BfCfb:
    case StreamAlgorithm::Rc4Md5:
      return "openssl-legacy";
    case StreamAlgorithm::ChaCha20Ietf:
    case StreamAlgorithm::ChaCha20:
    case StreamAlgorithm::Salsa20:
      return "libsodium";
    default:
      return "openssl";
  }
}

StreamCipherPtr createStreamCipher(const MethodInfo& method, std::span<const uint8_t> key,
                                   std::span<const uint8_t> iv, bool encrypt) {
  if (!isStream(method) || key.size() != method.key_size || iv.size() != method.salt_size) {
    return nullptr;
  }
  if (streamLibrary(method) == "libsodium") {
    // sodium_init() picks the fastest implementation for this CPU (once; thread-safe).
    static const bool kSodiumReady = sodium_init() >= 0;
    if (!kSodiumReady) return nullptr;
    return std::make_unique<SodiumStream>(method.stream, key, iv);
  }
  auto evp = std::make_unique<EvpStream>();
  if (method.stream == StreamAlgorithm::Rc4Md5) {
    // RC4 keyed with MD5(key || IV); the IV is not otherwise used (§4).
    std::array<uint8_t, 48> material{};
    std::copy(key.begin(), key.end(), material.begin());
    std::copy(iv.begin(), iv.end(), material.begin() + key.size());
    std::array<uint8_t, 16> rc4_key{};
    unsigned int len = 0;
    const bool hashed = EVP_Digest(material.data(), key.size() + iv.size(), rc4_key.data(), &len,
                                   EVP_md5(), nullptr) == 1;
    const bool ok = hashed && evp->init(opensslCipher(method), rc4_key, {}, encrypt);
    OPENSSL_cleanse(material.data(), material.size());
    OPENSSL_cleanse(rc4_key.data(), rc4_key.size());
    return ok ? std::move(evp) : nullptr;
  }
  if (!evp->init(opensslCipher(method), key, iv, encrypt)) return nullptr;
  return evp;
}

}  // namespace shadowrelay::crypto
