// SPDX-License-Identifier: Apache-2.0
#include "relay/plugin/sip003_plugin.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <string_view>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "relay/log.h"
#include "relay/ss_uri.h"

namespace shadowrelay::relay {

namespace {

constexpr char kLoopback[] = "127.0.0.1";
// Port picks retried when the TCP port is taken for UDP (server) before giving up.
constexpr int kPortAttempts = 16;

absl::Status configError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config: ", field, ": ", what));
}

bool isExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

/// The port of a socket bound to `address` with port 0 and closed again; 0 on failure.
uint16_t probePort(const SocketAddress& address, int type) {
  Fd fd(::socket(address.family(), type | SOCK_CLOEXEC, 0));
  SocketAddress any = address;
  any.setPort(0);
  if (!fd.valid() || ::bind(fd.get(), any.get(), any.len) != 0) return 0;
  return localAddress(fd.get()).port();
}

/// Whether `address` can be bound for `type` now (and is released again).
bool bindable(const SocketAddress& address, int type) {
  Fd fd(::socket(address.family(), type | SOCK_CLOEXEC, 0));
  return fd.valid() && ::bind(fd.get(), address.get(), address.len) == 0;
}

/// A port free for TCP on `address` and, with `udp`, for UDP too.
absl::StatusOr<uint16_t> pickPort(const SocketAddress& address, bool udp) {
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    const uint16_t port = probePort(address, SOCK_STREAM);
    if (port == 0) break;
    SocketAddress candidate = address;
    candidate.setPort(port);
    if (!udp || bindable(candidate, SOCK_DGRAM)) return port;
  }
  return absl::UnavailableError(
      absl::StrCat("plugin: no free port on ", address.toString(), " for the plugin"));
}

/// /proc/net/tcp{,6} rows: "sl local_address rem_address st ...", local_address "HEXIP:HEXPORT",
/// st 0A for LISTEN.
bool listedAsListening(const char* table, uint16_t port) {
  std::ifstream in(table);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<absl::string_view> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cols.size() < 4 || cols[3] != "0A") continue;
    const size_t colon = cols[1].rfind(':');
    uint32_t listening = 0;
    if (colon != absl::string_view::npos &&
        absl::SimpleHexAtoi(cols[1].substr(colon + 1), &listening) && listening == port) {
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> findExecutable(absl::string_view name, absl::string_view path_env) {
  if (name.empty()) return absl::NotFoundError("empty program name");
  if (absl::StrContains(name, '/')) {
    std::string path(name);
    if (isExecutableFile(path)) return path;
    return absl::NotFoundError(absl::StrCat("\"", name, "\" is not an executable file"));
  }
  for (absl::string_view dir : absl::StrSplit(path_env, ':')) {
    std::string path = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (isExecutableFile(path)) return path;
  }
  return absl::NotFoundError(
      absl::StrCat("\"", name, "\" not found in PATH (", path_env, ")"));
}

bool tcpPortListening(uint16_t port) {
  return listedAsListening("/proc/net/tcp", port) || listedAsListening("/proc/net/tcp6", port);
}

Sip003Plugin::Sip003Plugin(const Config& config, std::string path)
    : role_(config.role), name_(config.plugin), path_(std::move(path)),
      options_(config.plugin_opts) {}

Sip003Plugin::Sip003Plugin(Role role, absl::string_view name, std::string path,
                           absl::string_view options)
    : role_(role), name_(name), path_(std::move(path)), options_(options) {}

Sip003Plugin::~Sip003Plugin() { stop(); }

absl::StatusOr<std::unique_ptr<Sip003Plugin>> Sip003Plugin::forDedicatedPort(
    absl::string_view plugin, absl::string_view options, const SocketAddress& public_address,
    const SocketAddress& relay_listen) {
  const char* path_env = std::getenv("PATH");
  auto path = findExecutable(plugin, path_env != nullptr ? path_env : "/usr/bin:/bin");
  if (!path.ok()) return path.status();
  std::unique_ptr<Sip003Plugin> out(
      new Sip003Plugin(Role::Server, plugin, *std::move(path), options));
  out->remote_ = Endpoint::fromSocketAddress(public_address);
  out->relay_listen_ = relay_listen;
  return out;
}

absl::StatusOr<std::unique_ptr<Sip003Plugin>> Sip003Plugin::create(
    const Config& config, std::vector<SocketAddress>& listen, bool udp) {
  if (config.plugin.empty()) return nullptr;
  const char* path_env = std::getenv("PATH");
  auto path = findExecutable(config.plugin, path_env != nullptr ? path_env : "/usr/bin:/bin");
  if (!path.ok()) return configError("plugin", path.status().message());
  std::unique_ptr<Sip003Plugin> plugin(new Sip003Plugin(config, *std::move(path)));
  if (config.role == Role::Server) {
    if (listen.size() != 1) {
      return configError("server", "a plugin listens on one address: give one -s with --plugin");
    }
    SocketAddress& public_address = listen.front();
    if (public_address.port() == 0 && !config.check_only) {
      auto port = pickPort(public_address, udp);
      if (!port.ok()) return port.status();
      public_address.setPort(*port);
    }
    plugin->remote_ = Endpoint::fromSocketAddress(public_address);
    auto behind = parseSocketAddress(kLoopback, 0);
    plugin->relay_listen_ = *behind;  // a literal: always parses
  } else {
    plugin->remote_ = Endpoint{config.server_hosts.front(), config.server_port};
    uint16_t port = 0;
    if (!config.check_only) {
      auto loopback = parseSocketAddress(kLoopback, 0);
      port = probePort(*loopback, SOCK_STREAM);
      if (port == 0) return absl::UnavailableError("plugin: no free port on 127.0.0.1");
    }
    plugin->relay_connect_ = Endpoint{kLoopback, port};
  }
  return plugin;
}

absl::Status Sip003Plugin::start(bool wait) {
  const bool server = role_ == Role::Server;
  PluginProcessOptions options;
  options.name = name_;
  options.path = path_;
  const Endpoint local = server ? Endpoint::fromSocketAddress(relay_listen_) : relay_connect_;
  options.env = {{"SS_REMOTE_HOST", remote_.host},
                 {"SS_REMOTE_PORT", absl::StrCat(remote_.port)},
                 {"SS_LOCAL_HOST", local.host},
                 {"SS_LOCAL_PORT", absl::StrCat(local.port)},
                 {"SS_PLUGIN_OPTIONS", options_}};
  options.restarts = restarts_;
  auto process = PluginProcess::start(std::move(options));
  if (!process.ok()) return process.status();
  process_ = std::move(*process);
  // Server: the plugin listens on the public port; client: on the loopback port we connect to.
  const uint16_t port = server ? remote_.port : local.port;
  SR_LOG(Info, "plugin %s: %s; waiting for it to listen on port %d", name_,
         server ? absl::StrCat("public ", remote_.toString(), " -> relay ", local.toString())
                : absl::StrCat("relay -> ", local.toString(), " -> server ", remote_.toString()),
         port);
  if (!wait) return absl::OkStatus();
  const auto deadline = std::chrono::steady_clock::now() + kListenDeadline;
  while (!tcpPortListening(port)) {
    if (process_->exits() > 0) {
      return absl::UnavailableError(absl::StrCat(
          "plugin ", name_, " exited before listening on port ", port, " (its output is above)"));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::UnavailableError(absl::StrCat("plugin ", name_, " did not listen on port ",
                                                 port, " within ", kListenDeadline.count(), " s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::OkStatus();
}

void Sip003Plugin::stop() {
  if (process_) process_->stop();
}

std::string Sip003Plugin::uriParameter() const {
  return clientPluginParameter(name_, options_);
}

pid_t Sip003Plugin::pid() const { return process_ ? process_->pid() : 0; }

}  // namespace shadowrelay::relay
