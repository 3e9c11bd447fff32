// SPDX-License-Identifier: Apache-2.0
// shadowrelay: one binary, several roles (ARCHITECTURE.md).
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "crypto/legacy_stream.h"
#include "crypto/method.h"
#include "crypto/providers.h"
#include "api/app/server_runtime.h"
#include "relay/config.h"
#include "relay/base/process_identity.h"
#include "relay/log.h"
#include "relay/resolve/resolve_command.h"

namespace {

constexpr const char* kVersion = shadowrelay::relay::kShadowrelayVersion;

using shadowrelay::relay::Role;

void printUsage(FILE* out) {
  absl::FPrintF(out,
                "usage: shadowrelay <command> [options]\n"
                "commands:\n"
                "  server     Shadowsocks server (SIP004 AEAD)\n"
                "  local      SOCKS5 front end relaying through a Shadowsocks server\n"
                "  tunnel     fixed-destination forward (-L host:port) through a server\n"
                "  resolve    look names up with the relay's resolver and cache\n"
                "  ciphers    list the supported methods and the crypto provider each uses\n"
                "  version    print the version\n"
                "Run `shadowrelay <command> --help` for a command's options.\n");
}

int runCiphers(int argc, char** argv) {
  std::string choice_text = "auto";
  bool insecure = false;  // also list the legacy stream methods
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--crypto-provider=", 18) == 0) {
      choice_text = argv[i] + 18;
    } else if (std::strcmp(argv[i], "--allow-insecure-ciphers") == 0) {
      insecure = true;
    } else if (std::strcmp(argv[i], "--help") == 0) {
      absl::PrintF(
          "usage: shadowrelay ciphers [--crypto-provider=auto|openssl|boringssl] "
          "[--allow-insecure-ciphers]\n"
          "  --allow-insecure-ciphers  also list the legacy stream methods (edition stream)\n");
      return 0;
    }
  }
  auto choice = shadowrelay::crypto::parseProviderChoice(choice_text);
  if (!choice.ok()) {
    absl::FPrintF(stderr, "shadowrelay: %s\n", choice.status().message());
    return 2;
  }
  auto providers = shadowrelay::crypto::CryptoProviders::create(*choice);
  if (!providers.ok()) {
    absl::FPrintF(stderr, "shadowrelay: %s\n", providers.status().message());
    return 1;
  }
  for (const auto& note : (*providers)->notes()) {
    absl::PrintF("# %s\n", note);
  }
  // 2017 methods take any password; 2022 methods a base64 key of exactly `key` bytes.
  absl::PrintF("%-30s %4s %5s %6s %-7s %s\n", "method", "key", "nonce", "tag", "edition",
               "provider");
  for (const auto& m : shadowrelay::crypto::methodTable()) {
    if (shadowrelay::crypto::isStream(m)) {
      if (insecure) {
        absl::PrintF("%-30s %4d %5d %6d %-7s %s  (insecure: no integrity)\n", m.name,
                     m.key_size, m.nonce_size, m.tag_size, "stream",
                     shadowrelay::crypto::streamLibrary(m));
      }
      continue;
    }
    const bool is2022 = m.edition == shadowrelay::crypto::Edition::Aead2022;
    absl::PrintF("%-30s %4d %5d %6d %-7s %s%s\n", m.name, m.key_size, m.nonce_size, m.tag_size,
                 is2022 ? "2022" : "2017", (*providers)->providerFor(m).name(),
                 m.recommended ? "" : "  (not recommended)");
  }
  return 0;
}

/// `shadowrelay server|local|tunnel [options]`: the configuration (exit 2 naming the field when
/// it is wrong), then the runtime until SIGINT/SIGTERM and its drain (exit 0).
int runRole(Role role, int argc, const char* const* argv) {
  namespace app = shadowrelay::api::app;
  const auto name = shadowrelay::relay::roleName(role);
  auto config = shadowrelay::relay::parseConfig(role, argc, argv);
  if (!config.ok()) {
    absl::FPrintF(stderr, "shadowrelay %s: %s\n", name, config.status().message());
    absl::FPrintF(stderr, "Run `shadowrelay %s --help` for the options.\n", name);
    return app::kExitConfig;
  }
  if (config->help) {
    absl::PrintF("%s", shadowrelay::relay::usage(role));
    return 0;
  }
  if (config->verbose) shadowrelay::relay::log::setLevel(shadowrelay::relay::log::Level::Debug);
  for (const std::string& warning : config->warnings) SR_LOG(Warn, "%s", warning);
  const bool check_only = config->check_only;
  const std::string pid_path = config->pid_file;
  const std::string run_as = config->run_as;
  const std::string state_dir = config->state_dir;
  app::ServerRuntime runtime(*std::move(config));
  if (absl::Status status = runtime.start(); !status.ok()) {
    absl::FPrintF(stderr, "shadowrelay %s: %s\n", name, status.message());
    runtime.stop();
    return app::exitCodeFor(status);
  }
  if (check_only) {
    runtime.stop();
    return 0;
  }
  // Listening and holding its secrets: say so, then stop being root.
  std::optional<shadowrelay::relay::PidFile> pid_file;
  absl::Status status;
  if (!pid_path.empty()) {
    auto created = shadowrelay::relay::PidFile::create(pid_path);
    if (created.ok()) pid_file.emplace(*std::move(created));
    status = created.status();
  }
  if (status.ok() && !run_as.empty()) {
    auto who = shadowrelay::relay::lookUpUser(run_as);
    status = who.ok() ? shadowrelay::relay::becomeUser(
                            *who, state_dir.empty() ? std::vector<std::string>{}
                                                    : std::vector<std::string>{state_dir})
                      : who.status();
    if (status.ok()) SR_LOG(Info, "running as user %s (uid %d)", run_as, static_cast<int>(who->uid));
  }
  if (!status.ok()) {
    absl::FPrintF(stderr, "shadowrelay %s: %s\n", name, status.message());
    runtime.stop();
    return 1;
  }
  runtime.run();
  runtime.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves Mutex deadlock detection on: every Lock
  // and Unlock also updates a global lock graph (GraphCycles in perf, on the event loop's post
  // queue every iteration and the salt filter per connection). It is a debugging aid; our
  // locks are leaves (never held while taking another), so switch it off before any thread
  // starts.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (argc < 2) {
    printUsage(stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    printUsage(stdout);
    return 0;
  }
  if (cmd == "version" || cmd == "--version") {
    absl::PrintF("shadowrelay %s\n", kVersion);
    return 0;
  }
  if (cmd == "ciphers") {
    return runCiphers(argc - 2, argv + 2);
  }
  if (cmd == "resolve") {
    return shadowrelay::relay::runResolveCommand(argc - 1, argv + 1);
  }
  if (cmd == "server" || cmd == "local" || cmd == "tunnel") {
    const Role role = cmd == "server" ? Role::Server : cmd == "local" ? Role::Local : Role::Tunnel;
    return runRole(role, argc - 2, argv + 2);
  }
  absl::FPrintF(stderr, "shadowrelay: unknown command '%s'\n", cmd);
  printUsage(stderr);
  return 2;
}
