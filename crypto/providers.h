// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/aead.h"
#include "crypto/method.h"

namespace shadowrelay::crypto {

enum class ProviderChoice { Auto, OpenSsl, BoringSsl };

/// "auto", "openssl" or "boringssl"; the error names the field `crypto-provider`.
absl::StatusOr<ProviderChoice> parseProviderChoice(absl::string_view text);

/// The crypto providers of this process and which one serves each algorithm.
///
/// `auto` decides per algorithm by measurement at start-up: each available provider seals a
/// 16 KiB buffer for about 3 ms, three rounds alternating; the provider with the higher median
/// throughput wins if it is more than 5% faster, otherwise OpenSSL (linked normally, no plugin).
/// If the BoringSSL plugin cannot be loaded, `auto` uses OpenSSL and says why in notes().
/// Immutable after create(); thread-safe.
class CryptoProviders {
 public:
  static absl::StatusOr<std::unique_ptr<CryptoProviders>> create(
      ProviderChoice choice, const std::string& boringssl_plugin_path = "");

  const AeadProvider& providerFor(AeadAlgorithm algorithm) const;
  const AeadProvider& providerFor(const MethodInfo& method) const {
    return providerFor(method.algorithm);
  }
  /// Every loaded provider (OpenSSL first).
  std::vector<const AeadProvider*> available() const;
  /// Measured seal throughput in bytes/s (0 when not measured: choice was not auto).
  double measuredThroughput(AeadAlgorithm algorithm, absl::string_view provider) const;
  /// Human-readable lines: what was chosen and why.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  CryptoProviders() = default;
  void decideAuto();

  std::unique_ptr<AeadProvider> boringssl_;
  std::array<const AeadProvider*, 5> chosen_{};
  std::array<std::array<double, 2>, 5> throughput_{};  // [algorithm][0 openssl, 1 boringssl]
  std::vector<std::string> notes_;
};

/// Seal throughput of `provider` for `algorithm` in bytes/s over about `millis` ms of 16 KiB
/// seals (also used by the benchmark).
double measureSealThroughput(const AeadProvider& provider, AeadAlgorithm algorithm, double millis);

}  // namespace shadowrelay::crypto
