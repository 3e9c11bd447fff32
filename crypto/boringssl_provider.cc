// SPDX-License-Identifier: Apache-2.0
#include "crypto/boringssl_provider.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/boringssl/plugin_api.h"

namespace shadowrelay::crypto {
namespace {

constexpr absl::string_view kPluginName = "libshadowrelay_boringssl.so";
constexpr absl::string_view kRunfilesPath = "shadowrelay/crypto/boringssl/libshadowrelay_boringssl.so";

class BoringsslAead final : public Aead {
 public:
  BoringsslAead(const ShadowrelayBoringsslApi* api, void* ctx) : api_(api), ctx_(ctx) {}
  ~BoringsslAead() override { api_->destroy(ctx_); }
  BoringsslAead(const BoringsslAead&) = delete;
  BoringsslAead& operator=(const BoringsslAead&) = delete;

  bool rekey(std::span<const uint8_t> key) override {
    return api_->rekey(ctx_, key.data(), key.size()) == 1;
  }
  bool seal(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
            std::span<const uint8_t> in, uint8_t* out) override {
    return api_->seal(ctx_, nonce.data(), nonce.size(), aad.data(), aad.size(), in.data(),
                      in.size(), out) == 1;
  }
  bool open(std::span<const uint8_t> nonce, std::span<const uint8_t> aad,
            std::span<const uint8_t> in, uint8_t* out) override {
    return api_->open(ctx_, nonce.data(), nonce.size(), aad.data(), aad.size(), in.data(),
                      in.size(), out) == 1;
  }

 private:
  const ShadowrelayBoringsslApi* api_;
  void* ctx_;
};

class BoringsslAes final : public BlockCipher {
 public:
  BoringsslAes(const ShadowrelayBoringsslApi* api, void* ctx) : api_(api), ctx_(ctx) {}
  ~BoringsslAes() override { api_->aes_destroy(ctx_); }
  BoringsslAes(const BoringsslAes&) = delete;
  BoringsslAes& operator=(const BoringsslAes&) = delete;

  bool encrypt(InBlock in, OutBlock out) override {
    return api_->aes_encrypt(ctx_, in.data(), out.data()) == 1;
  }
  bool decrypt(InBlock in, OutBlock out) override {
    return api_->aes_decrypt(ctx_, in.data(), out.data()) == 1;
  }

 private:
  const ShadowrelayBoringsslApi* api_;
  void* ctx_;
};

class BoringsslProvider final : public AeadProvider {
 public:
  explicit BoringsslProvider(const ShadowrelayBoringsslApi* api) : api_(api) {}
  absl::string_view name() const override { return "boringssl"; }
  bool supports(AeadAlgorithm algorithm) const override {
    return api_->supports(static_cast<int>(algorithm)) == 1;
  }
  AeadPtr create(AeadAlgorithm algorithm, std::span<const uint8_t> key) const override {
    void* ctx = api_->create(static_cast<int>(algorithm), key.data(), key.size());
    if (ctx == nullptr) {
      return nullptr;
    }
    return std::make_unique<BoringsslAead>(api_, ctx);
  }
  BlockCipherPtr createAes(std::span<const uint8_t> key) const override {
    void* ctx = api_->aes_create(key.data(), key.size());
    if (ctx == nullptr) {
      return nullptr;
    }
    return std::make_unique<BoringsslAes>(api_, ctx);
  }

 private:
  const ShadowrelayBoringsslApi* api_;
};

std::string executablePath() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

std::string dirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

std::vector<std::string> boringsslPluginCandidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("SHADOWRELAY_BORINGSSL_PLUGIN"); env != nullptr && *env) {
    out.emplace_back(env);
  }
  for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    if (const char* dir = std::getenv(var); dir != nullptr && *dir) {
      out.push_back(absl::StrCat(dir, "/", kRunfilesPath));
    }
  }
  const std::string exe = executablePath();
  if (!exe.empty()) {
    out.push_back(absl::StrCat(exe, ".runfiles/", kRunfilesPath));
    out.push_back(absl::StrCat(dirName(exe), "/", kPluginName));
    out.push_back(absl::StrCat(dirName(exe), "/../lib/shadowrelay/", kPluginName));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<AeadProvider>> loadBoringsslProvider(const std::string& path) {
#if defined(SHADOWRELAY_SANITIZER)
  (void)path;
  return absl::UnavailableError(
      "the BoringSSL provider is not available in sanitizer builds (they refuse RTLD_DEEPBIND)");
#else
  std::vector<std::string> candidates =
      path.empty() ? boringsslPluginCandidates() : std::vector<std::string>{path};
  std::vector<std::string> errors;
  for (const std::string& candidate : candidates) {
    if (::access(candidate.c_str(), R_OK) != 0) {
      continue;
    }
    void* handle = ::dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      errors.push_back(absl::StrCat(candidate, ": ", ::dlerror()));
      continue;
    }
    auto fn = reinterpret_cast<ShadowrelayBoringsslApiFn>(
        ::dlsym(handle, SHADOWRELAY_BORINGSSL_API_SYMBOL));
    const ShadowrelayBoringsslApi* api = fn != nullptr ? fn() : nullptr;
    if (api == nullptr || api->version != SHADOWRELAY_BORINGSSL_API_VERSION) {
      errors.push_back(absl::StrCat(candidate, ": not a shadowrelay BoringSSL plugin of API version ",
                                    SHADOWRELAY_BORINGSSL_API_VERSION));
      ::dlclose(handle);
      continue;
    }
    // The handle is kept open for the life of the process: Aead objects point into it.
    return std::make_unique<BoringsslProvider>(api);
  }
  if (errors.empty()) {
    return absl::NotFoundError(absl::StrCat("BoringSSL plugin not found; looked in: ",
                                            absl::StrJoin(candidates, ", ")));
  }
  return absl::UnavailableError(absl::StrJoin(errors, "; "));
#endif
}

}  // namespace shadowrelay::crypto
