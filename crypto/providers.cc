// SPDX-License-Identifier: Apache-2.0
#include "crypto/providers.h"

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "crypto/boringssl_provider.h"
#include "crypto/openssl_aead.h"

namespace shadowrelay::crypto {
namespace {

constexpr std::array<AeadAlgorithm, 5> kAlgorithms = {
    AeadAlgorithm::Aes128Gcm, AeadAlgorithm::Aes192Gcm, AeadAlgorithm::Aes256Gcm,
    AeadAlgorithm::ChaCha20Poly1305, AeadAlgorithm::XChaCha20Poly1305};

size_t keySizeOf(AeadAlgorithm a) {
  for (const MethodInfo& m : allMethods()) {
    if (m.algorithm == a) {
      return m.key_size;
    }
  }
  return 32;
}

size_t nonceSizeOf(AeadAlgorithm a) { return a == AeadAlgorithm::XChaCha20Poly1305 ? 24 : 12; }

}  // namespace

absl::StatusOr<ProviderChoice> parseProviderChoice(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "auto") {
    return ProviderChoice::Auto;
  }
  if (lower == "openssl") {
    return ProviderChoice::OpenSsl;
  }
  if (lower == "boringssl") {
    return ProviderChoice::BoringSsl;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("crypto-provider: \"", text, "\" is not one of auto, openssl, boringssl"));
}

double measureSealThroughput(const AeadProvider& provider, AeadAlgorithm algorithm,
                             double millis) {
  std::vector<uint8_t> key(keySizeOf(algorithm), 0x42);
  AeadPtr aead = provider.create(algorithm, key);
  if (aead == nullptr) {
    return 0;
  }
  constexpr size_t kChunk = 16 * 1024;
  std::vector<uint8_t> buf(kChunk + kTagSize, 0x17);
  std::array<uint8_t, kMaxNonceSize> nonce{};
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double, std::milli>(millis);
  size_t bytes = 0;
  auto now = start;
  do {
    for (int i = 0; i < 8; ++i) {
      aead->seal({nonce.data(), nonceSizeOf(algorithm)}, {}, {buf.data(), kChunk}, buf.data());
      nonce[0]++;
      bytes += kChunk;
    }
    now = Clock::now();
  } while (now < deadline);
  const double secs = std::chrono::duration<double>(now - start).count();
  return secs > 0 ? static_cast<double>(bytes) / secs : 0;
}

absl::StatusOr<std::unique_ptr<CryptoProviders>> CryptoProviders::create(
    ProviderChoice choice, const std::string& boringssl_plugin_path) {
  std::unique_ptr<CryptoProviders> p(new CryptoProviders());
  const AeadProvider& openssl = opensslProvider();
  if (choice != ProviderChoice::OpenSsl) {
    auto loaded = loadBoringsslProvider(boringssl_plugin_path);
    if (loaded.ok()) {
      p->boringssl_ = std::move(*loaded);
    } else if (choice == ProviderChoice::BoringSsl) {
      return absl::Status(loaded.status().code(),
                          absl::StrCat("crypto-provider boringssl: ", loaded.status().message()));
    } else {
      p->notes_.push_back(
          absl::StrCat("BoringSSL provider unavailable, using OpenSSL: ", loaded.status().message()));
    }
  }
  for (size_t i = 0; i < kAlgorithms.size(); ++i) {
    p->chosen_[i] = &openssl;
    if (choice == ProviderChoice::BoringSsl && p->boringssl_->supports(kAlgorithms[i])) {
      p->chosen_[i] = p->boringssl_.get();
    }
  }
  if (choice == ProviderChoice::Auto && p->boringssl_ != nullptr) {
    p->decideAuto();
  }
  return p;
}

void CryptoProviders::decideAuto() {
  const AeadProvider& openssl = opensslProvider();
  for (size_t i = 0; i < kAlgorithms.size(); ++i) {
    const AeadAlgorithm a = kAlgorithms[i];
    if (!boringssl_->supports(a) || !openssl.supports(a)) {
      continue;
    }
    std::array<double, 3> ours{};
    std::array<double, 3> theirs{};
    for (int round = 0; round < 3; ++round) {
      ours[round] = measureSealThroughput(openssl, a, 3.0);
      theirs[round] = measureSealThroughput(*boringssl_, a, 3.0);
    }
    std::sort(ours.begin(), ours.end());
    std::sort(theirs.begin(), theirs.end());
    throughput_[i] = {ours[1], theirs[1]};
    const bool boring_wins = theirs[1] > ours[1] * 1.05;
    chosen_[i] = boring_wins ? boringssl_.get() : &openssl;
    notes_.push_back(absl::StrFormat("%s: %s (openssl %.2f GB/s, boringssl %.2f GB/s)",
                                     algorithmName(a), chosen_[i]->name(), ours[1] / 1e9,
                                     theirs[1] / 1e9));
  }
}

const AeadProvider& CryptoProviders::providerFor(AeadAlgorithm algorithm) const {
  return *chosen_[static_cast<size_t>(algorithm)];
}

std::vector<const AeadProvider*> CryptoProviders::available() const {
  std::vector<const AeadProvider*> out;
  out.reserve(2);
  out.push_back(&opensslProvider());
  if (boringssl_ != nullptr) {
    out.push_back(boringssl_.get());
  }
  return out;
}

double CryptoProviders::measuredThroughput(AeadAlgorithm algorithm,
                                           absl::string_view provider) const {
  return throughput_[static_cast<size_t>(algorithm)][provider == "boringssl" ? 1 : 0];
}

}  // namespace shadowrelay::crypto
