// SPDX-License-Identifier: Apache-2.0
#include "relay/app/run_role.h"

#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/providers.h"
#include "crypto/salt_filter.h"
#include "dns/dns_cache.h"
#include "relay/event/event_loop.h"
#include "relay/event/signal_watcher.h"
#include "relay/event/timer.h"
#include "relay/event/worker_pool.h"
#include "relay/log.h"
#include "relay/net/socket.h"
#include "relay/ss_uri.h"
#include "relay/worker/worker.h"
#include "relay/udp/udp_client.h"
#include "relay/udp/udp_server.h"
#include "relay/app/sample_hub.h"
#include "relay/app/server_users.h"
#include "api/control/bearer_auth.h"
#include "api/control/control_server.h"
#include "api/users/user_registry.h"
#include "api/metrics/metrics_exporter.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include <functional>

namespace shadowrelay::relay {

namespace {

constexpr int kExitConfig = 2;
constexpr int kExitRuntime = 1;

void fail(Role role, absl::string_view message) {
  absl::FPrintF(stderr, "shadowrelay %s: %s\n", roleName(role), message);
}

/// A secret kept in <state_dir>/<name>: read, or made by `make` and stored there (0600, written
/// to a temporary file and renamed, so a crash never leaves half a secret). Errors name the
/// file, never the secret. Without `persist` (--check-config) a missing secret is made but not
/// stored: checking a configuration writes nothing.
absl::StatusOr<std::string> loadOrCreateSecret(const std::string& state_dir, absl::string_view name,
                                               const std::function<std::string()>& make,
                                               bool persist, bool* created) {
  const std::string path = absl::StrCat(state_dir, "/", name);
  std::ifstream in(path);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    std::string secret(absl::StripAsciiWhitespace(text.str()));
    if (secret.empty()) return absl::DataLossError(absl::StrCat(path, ": empty"));
    *created = false;
    return secret;
  }
  if (!persist) {
    *created = true;
    return make();
  }
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::UnavailableError(
        absl::StrCat("state_dir ", state_dir, ": cannot create: ", std::strerror(errno)));
  }
  std::string secret = make();
  const std::string tmp = absl::StrCat(path, ".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("state_dir ", state_dir, ": cannot write: ", std::strerror(errno)));
  }
  const std::string line = secret + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::UnavailableError(absl::StrCat("state_dir ", state_dir, ": cannot store ", name));
  }
  *created = true;
  return secret;
}

/// The address a client would use when the server listens on a wildcard: the first
/// non-loopback IPv4 address of this machine, else 127.0.0.1.
std::string publicHostGuess() {
  ifaddrs* list = nullptr;
  std::string found = "127.0.0.1";
  if (::getifaddrs(&list) != 0) {
    SR_LOG(Warn, "no interface address for access URLs (getifaddrs: %s): using %s; set "
                 "--public-host", std::strerror(errno), found);
    return found;
  }
  for (ifaddrs* it = list; it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr || it->ifa_addr->sa_family != AF_INET) continue;
    SocketAddress address;
    std::memcpy(&address.storage, it->ifa_addr, sizeof(sockaddr_in));
    address.len = sizeof(sockaddr_in);
    std::string text = address.toString();
    text = text.substr(0, text.rfind(':'));
    if (text.rfind("127.", 0) == 0) continue;
    found = text;
    break;
  }
  ::freeifaddrs(list);
  if (found == "127.0.0.1") {
    SR_LOG(Warn, "no non-loopback IPv4 address for access URLs: using %s; set --public-host",
           found);
  }
  return found;
}

/// Addresses of hosts named in the configuration: IP literals as given, names through
/// getaddrinfo (start-up only: this blocks).
absl::StatusOr<std::vector<SocketAddress>> resolveAtStartup(const std::vector<std::string>& hosts,
                                                           uint16_t port) {
  std::vector<SocketAddress> out;
  for (const std::string& host : hosts) {
    auto literal = parseSocketAddress(host, port);
    if (literal.ok()) {
      out.push_back(*literal);
      continue;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
    addrinfo* result = nullptr;
    const std::string service = absl::StrCat(port);
    const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
    if (rc != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("server: cannot resolve \"", host, "\": ", gai_strerror(rc)));
    }
    for (addrinfo* it = result; it != nullptr; it = it->ai_next) {
      SocketAddress address;
      std::memcpy(&address.storage, it->ai_addr, it->ai_addrlen);
      address.len = it->ai_addrlen;
      out.push_back(address);
    }
    ::freeaddrinfo(result);
  }
  return out;
}

crypto::SocksAddress toSocksAddress(const HostPort& hp) {
  auto ip = parseSocketAddress(hp.host, hp.port);
  if (ip.ok() && ip->family() == AF_INET) {
    std::array<uint8_t, 4> bytes{};
    std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in*>(&ip->storage)->sin_addr, 4);
    return crypto::SocksAddress::ipv4(bytes, hp.port);
  }
  if (ip.ok()) {
    std::array<uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in6*>(&ip->storage)->sin6_addr, 16);
    return crypto::SocksAddress::ipv6(bytes, hp.port);
  }
  return crypto::SocksAddress::domain(hp.host, hp.port);
}

/// Drives the graceful stop from the main thread's loop.
class Supervisor {
 public:
  Supervisor(EventLoop& main, WorkerPool& pool, std::vector<std::unique_ptr<Worker>>& workers,
             std::chrono::seconds drain)
      : main_(main), pool_(pool), workers_(workers), drain_(drain), poll_(main, [this] { poll(); }) {}

  void onStopSignal(int signo) {
    if (draining_) {
      SR_LOG(Info, "signal %d again: closing every session now", signo);
      finish();
      return;
    }
    draining_ = true;
    deadline_ = main_.now() + drain_;
    SR_LOG(Info, "signal %d: no longer accepting; draining sessions for up to %d s", signo,
           static_cast<int>(drain_.count()));
    pool_.runOnEachAndWait([this](EventLoop&, size_t i) { workers_[i]->stopAccepting(); });
    poll();
  }

 private:
  void poll() {
    auto open = std::make_shared<std::atomic<size_t>>(0);
    pool_.runOnEachAndWait(
        [this, open](EventLoop&, size_t i) { *open += workers_[i]->sessionCount(); });
    if (*open == 0 || main_.now() >= deadline_) {
      if (*open > 0) SR_LOG(Info, "drain deadline: closing %d sessions", *open);
      finish();
      return;
    }
    poll_.armAfter(std::chrono::milliseconds(100));
  }

  void finish() {
    poll_.cancel();
    pool_.runOnEachAndWait([this](EventLoop&, size_t i) { workers_[i]->closeAllSessions(); });
    main_.stop();
  }

  EventLoop& main_;
  WorkerPool& pool_;
  std::vector<std::unique_ptr<Worker>>& workers_;
  const std::chrono::seconds drain_;
  Timer poll_;
  bool draining_ = false;
  TimePoint deadline_;
};

/// A port from "host:port" (0 when there is none, e.g. "off").
uint16_t listenPort(absl::string_view listen) {
  const size_t colon = listen.rfind(':');
  uint32_t port = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port > 65535) {
    return 0;
  }
  return static_cast<uint16_t>(port);
}

/// The users of the config file ("users") and of -k/--key ("default"), for the registry.
std::vector<api::users::User> configuredUsers(const Config& config) {
  std::vector<api::users::User> users;
  for (const ConfigUser& from : config.users) {
    api::users::User user;
    user.name = from.name;
    user.method = from.method.empty() ? config.method : from.method;
    user.password = from.password;
    user.key = from.key;
    user.port = from.port == config.server_port ? 0 : from.port;
    user.source = api::users::UserSource::Config;
    users.push_back(std::move(user));
  }
  if (!config.password.empty() || !config.key.empty()) {
    api::users::User user;
    user.name = "default";
    user.method = config.method;
    user.password = config.password;
    user.key = config.key;
    user.source = api::users::UserSource::Default;
    users.push_back(std::move(user));
  }
  return users;
}

/// The control API's token: --control-token-file, $SHADOWRELAY_CONTROL_TOKEN, else
/// <state_dir>/control_token (generated on first use). "" when there is none of these.
absl::StatusOr<std::string> controlToken(const Config& config) {
  auto token = api::control::loadControlToken(config.control_token_file,
                                              std::getenv(api::control::kControlTokenEnv));
  if (!token.ok() || !token->empty() || config.state_dir.empty()) return token;
  bool created = false;
  auto stored = loadOrCreateSecret(
      config.state_dir, "control_token", [] { return crypto::randomBase64Key(32); },
      !config.check_only, &created);
  if (stored.ok()) {
    SR_LOG(Info, "control API token %s %s/control_token",
           !created ? "read from" : config.check_only ? "would be generated in" : "generated in",
           config.state_dir);
  }
  return stored;
}

}  // namespace

int runRole(Role role, int argc, const char* const* argv) {
  auto parsed = parseConfig(role, argc, argv);
  if (!parsed.ok()) {
    fail(role, parsed.status().message());
    absl::FPrintF(stderr, "Run `shadowrelay %s --help` for the options.\n", roleName(role));
    return kExitConfig;
  }
  RelayEnv env;
  env.config = std::move(*parsed);
  Config& config = env.config;
  if (config.help) {
    absl::PrintF("%s", usage(role));
    return 0;
  }
  if (config.verbose) log::setLevel(log::Level::Debug);
  const bool server = role == Role::Server;

  // The server's embedded default: with a state directory and no user at all, a password is
  // generated once, kept there, and the ss:// URI printed.
  bool print_uri = false;
  if (server && config.password.empty() && config.key.empty() && config.users.empty() &&
      !config.state_dir.empty()) {
    bool created = false;
    auto password = loadOrCreateSecret(
        config.state_dir, "password", [] { return crypto::randomBase64Key(24); },
        !config.check_only, &created);
    if (!password.ok()) {
      fail(role, password.status().message());
      return kExitConfig;
    }
    config.password = *password;
    print_uri = true;
    SR_LOG(Info, "%s the password in %s/password",
           !created ? "using" : config.check_only ? "would generate" : "generated",
           config.state_dir);
  }
  if (auto status = validateConfig(config); !status.ok()) {
    fail(role, status.message());
    return kExitConfig;
  }
  // The control API needs a token; without one it stays off unless it was asked for.
  std::string control_token;
  bool control = server && config.control_listen != kListenOff;
  if (control) {
    auto token = controlToken(config);
    if (!token.ok()) {
      fail(role, absl::StrCat("config: control_token_file: ", token.status().message()));
      return kExitConfig;
    }
    control_token = *token;
    if (control_token.empty()) {
      if (config.control_listen_given) {
        fail(role, "config: control_listen: the control API needs a token (give "
                   "--control-token-file FILE, $SHADOWRELAY_CONTROL_TOKEN or --state-dir DIR)");
        return kExitConfig;
      }
      control = false;
      SR_LOG(Info, "control API off: no token (give --control-token-file, "
                   "$SHADOWRELAY_CONTROL_TOKEN or --state-dir)");
    }
  }
  if (server && config.password.empty() && config.key.empty() && config.users.empty() &&
      !control) {
    fail(role, "config: password: missing (give -k PASSWORD, --key BASE64, users in the config "
               "file, --state-dir DIR to generate one, or a control token to add users through "
               "the API)");
    return kExitConfig;
  }

  if (config.mode == Mode::UdpOnly && role == Role::Local) {
    fail(role, "config: mode: local relays UDP through SOCKS5 UDP ASSOCIATE, which needs its TCP "
               "port: use tcp_and_udp (-u), not udp_only (-U)");
    return kExitConfig;
  }
  const bool tcp = config.mode != Mode::UdpOnly;
  // local -u has no shared UDP port: each SOCKS5 UDP ASSOCIATE binds a socket of its own.
  const bool udp = config.mode != Mode::TcpOnly;
  const bool udp_port = udp && role != Role::Local;
  auto method = crypto::findMethod(config.method);
  auto choice = crypto::parseProviderChoice(config.crypto_provider);
  if (!choice.ok()) {
    fail(role, choice.status().message());
    return kExitConfig;
  }
  auto providers = crypto::CryptoProviders::create(*choice);
  if (!providers.ok()) {
    fail(role, providers.status().message());
    return kExitConfig;
  }
  if (!server) {
    auto master = crypto::masterKeyFor(**method, config.password, config.key);
    if (!master.ok()) {
      fail(role, absl::StrCat("config: key: ", master.status().message()));
      return kExitConfig;
    }
    env.credentials.method = *method;
    env.credentials.provider = &(*providers)->providerFor(**method);
    env.credentials.master = std::move(*master);
  }
  env.idle_timeout = std::chrono::seconds(config.timeout_seconds);
  env.handshake_timeout = std::chrono::seconds(config.handshake_timeout_seconds);
  env.connect_timeout = std::chrono::seconds(config.connect_timeout_seconds);
  env.preference =
      config.ipv6_first ? dns::AddressPreference::Ipv6First : dns::AddressPreference::Ipv4First;
  // SHADOWRELAY_IO_URING=0 turns the batched io_uring I/O off (plain recv/send per event).
  const char* uring = std::getenv("SHADOWRELAY_IO_URING");
  env.io_uring = uring == nullptr || std::strcmp(uring, "0") != 0;
  env.udp_timeout = std::chrono::seconds(config.udp_timeout_seconds);
  env.udp_max_associations = static_cast<size_t>(config.udp_max_associations);
  if (config.tunnel_destination) env.tunnel_target = toSocksAddress(*config.tunnel_destination);

  std::vector<std::string> hosts;
  uint16_t port = 0;
  if (server) {
    hosts = config.server_hosts.empty() ? std::vector<std::string>{"0.0.0.0"} : config.server_hosts;
    port = config.server_port;
  } else {
    hosts = {config.local_address};
    port = config.local_port;
  }
  auto addresses = resolveAtStartup(hosts, port);
  if (!addresses.ok()) {
    fail(role, addresses.status().message());
    return kExitConfig;
  }
  std::string public_host = config.public_host;
  if (public_host.empty()) {
    public_host = hosts.front();
    if (public_host == "0.0.0.0" || public_host == "::") public_host = publicHostGuess();
  }

  // The server's users: configured ones, and those of the API kept in the state directory.
  ServerUsers* server_users_ptr = nullptr;  // for the registry's port check, once it exists
  std::unique_ptr<api::users::UserRegistry> registry;
  if (server) {
    api::users::RegistryOptions options;
    // --check-config validates the configured users the same way, without the store.
    if (!config.check_only) options.state_dir = config.state_dir;
    options.default_method = std::string((*method)->name);
    options.default_method_given = config.method_given;
    options.configured_users = configuredUsers(config);
    options.shared_port = config.server_port;
    for (const std::string* listen : {&config.control_listen, &config.metrics_listen}) {
      if (const uint16_t reserved = listenPort(*listen); reserved != 0) {
        options.reserved_ports.push_back(reserved);
      }
    }
    options.providers = providers->get();
    options.port_check = [&server_users_ptr](uint16_t user_port) {
      return server_users_ptr != nullptr ? server_users_ptr->checkPort(user_port)
                                         : absl::OkStatus();
    };
    auto opened = api::users::UserRegistry::open(std::move(options));
    if (!opened.ok()) {
      fail(role, absl::StrCat("users: ", opened.status().message()));
      return kExitConfig;
    }
    registry = std::move(*opened);
  }
  if (config.check_only) {
    absl::PrintF("%s", checkReport(config));
    return 0;
  }

  crypto::SaltFilter salt_filter;
  dns::DnsCache dns_cache;
  env.salt_filter = &salt_filter;
  env.dns_cache = &dns_cache;

  SignalWatcher::blockInThisThread(SignalWatcher::stopAndReloadSignals());
  std::signal(SIGPIPE, SIG_IGN);
  const uint64_t files = raiseFileLimit();

  WorkerPool pool(static_cast<size_t>(config.workers));
  const size_t n = pool.size();
  // Prometheus /metrics: fed by the workers through the hub.
  std::unique_ptr<api::metrics::MetricsExporter> exporter;
  if (config.metrics_listen != kListenOff) {
    api::metrics::MetricsOptions options;
    options.listen = config.metrics_listen;
    options.workers = n;
    options.per_user = config.metrics_per_user;
    options.version = kShadowrelayVersion;
    options.crypto_provider = std::string((*providers)->providerFor(**method).name());
    api::users::UserRegistry* users = registry.get();
    options.users_count = [users] { return users != nullptr ? users->size() : size_t{0}; };
    auto started_exporter = api::metrics::MetricsExporter::start(std::move(options));
    if (started_exporter.ok()) {
      exporter = std::move(*started_exporter);
      SR_LOG(Info, "metrics on http://%s/metrics", exporter->address());
    } else if (config.metrics_listen_given) {
      fail(role, absl::StrCat("metrics_listen: ", started_exporter.status().message()));
      return kExitRuntime;
    } else {
      SR_LOG(Warn, "metrics not served: %s (set --metrics-listen)",
             started_exporter.status().message());
    }
  }
  SampleHub hub(n, exporter.get());
  env.observer = &hub;
  // Listening sockets first, on this thread, so that a bind error ends start-up cleanly.
  std::vector<std::vector<Fd>> listen_fds(n);
  std::vector<std::vector<Fd>> udp_fds(n);
  ListenOptions listen_options;
  listen_options.reuse_port = config.reuse_port;
  listen_options.fast_open = config.fast_open;
  for (const SocketAddress& address : *addresses) {
    for (size_t i = 0; udp_port && i < n; ++i) {
      // SO_REUSEPORT: the kernel hashes each client's datagrams to one worker, so its
      // association lives on one loop.
      auto fd = bindUdp(address, /*reuse_port=*/true);
      if (!fd.ok()) {
        fail(role, fd.status().message());
        return kExitRuntime;
      }
      udp_fds[i].push_back(std::move(*fd));
    }
    Fd shared;
    for (size_t i = 0; tcp && i < n; ++i) {
      if (config.reuse_port || i == 0) {
        auto fd = listenTcp(address, listen_options);
        if (!fd.ok()) {
          fail(role, fd.status().message());
          return kExitRuntime;
        }
        if (config.reuse_port) {
          listen_fds[i].push_back(std::move(*fd));
          continue;
        }
        shared = std::move(*fd);
      }
      listen_fds[i].push_back(Fd(::fcntl(shared.get(), F_DUPFD_CLOEXEC, 0)));
    }
  }

  pool.start();
  std::vector<std::unique_ptr<Worker>> workers(n);
  // tunnel -u and local -u: the server's address for the UDP associations, resolved once at
  // start-up.
  std::optional<SocketAddress> udp_server_address;
  if (udp && !server) {
    auto resolved = resolveAtStartup({config.server_hosts.front()}, config.server_port);
    if (!resolved.ok() || resolved->empty()) {
      fail(role, resolved.ok() ? "server: no address" : resolved.status().message());
      return kExitConfig;
    }
    udp_server_address = resolved->front();
    env.udp_server = udp_server_address;
  }
  std::vector<absl::Status> init_status(n);
  pool.runOnEachAndWait([&](EventLoop& loop, size_t i) {
    log::setThreadName(absl::StrCat("worker-", i));
    workers[i] = std::make_unique<Worker>(loop, env, i);
    init_status[i] = workers[i]->init();
  });
  int exit_code = 0;
  for (const absl::Status& status : init_status) {
    if (!status.ok()) {
      fail(role, absl::StrCat("resolver: ", status.message()));
      exit_code = kExitRuntime;
      break;
    }
  }
  // The users reach every worker (posted first, so before any connection is accepted).
  std::unique_ptr<ServerUsers> server_users;
  if (exit_code == 0 && server) {
    ListenPlan plan;
    plan.addresses = *addresses;
    plan.tcp = tcp;
    plan.udp = udp_port;
    plan.options = listen_options;
    server_users = std::make_unique<ServerUsers>(*registry, pool, workers, plan);
    server_users_ptr = server_users.get();
    server_users->start();
  }
  if (exit_code == 0) {
    pool.runOnEachAndWait([&](EventLoop&, size_t i) {
      Worker& worker = *workers[i];
      for (Fd& fd : listen_fds[i]) worker.addListener(std::move(fd));
      for (Fd& fd : udp_fds[i]) {
        if (server) {
          worker.addUdpPort(
              std::make_unique<UdpServer>(worker, std::move(fd), env.udp_max_associations));
        } else {
          worker.addUdpPort(std::make_unique<UdpTunnel>(worker, std::move(fd),
                                                        *udp_server_address, *env.tunnel_target,
                                                        env.udp_max_associations));
        }
      }
    });
  }

  const absl::Time started = absl::Now();
  std::unique_ptr<api::control::ControlServer> control_server;
  if (exit_code == 0 && control) {
    api::control::ControlServerOptions options;
    options.listen = config.control_listen;
    options.token = control_token;
    options.tls_cert_file = config.control_tls_cert;
    options.tls_key_file = config.control_tls_key;
    options.tls_client_ca_file = config.control_tls_client_ca;
    options.public_host = public_host;
    options.providers = providers->get();
    options.status = [&, started] {
      api::control::RelayStatus status;
      status.version = kShadowrelayVersion;
      status.uptime = absl::Now() - started;
      status.workers = static_cast<uint32_t>(n);
      for (const SocketAddress& address : *addresses) {
        std::string host = address.toString();
        host = host.substr(0, host.rfind(':'));
        if (tcp) status.listeners.push_back({host, port, "tcp", ""});
        if (udp_port) status.listeners.push_back({host, port, "udp", ""});
      }
      for (auto& listener : server_users->dedicatedListeners()) {
        status.listeners.push_back(std::move(listener));
      }
      status.active_tcp_sessions = hub.activeTcpSessions();
      status.udp_associations = hub.udpAssociations();
      return status;
    };
    auto started_server = api::control::ControlServer::start(std::move(options), *registry);
    if (started_server.ok()) {
      control_server = std::move(*started_server);  // ControlServer::start logged it
    } else if (config.control_listen_given) {
      fail(role, absl::StrCat("control_listen: ", started_server.status().message()));
      exit_code = kExitRuntime;
    } else {
      SR_LOG(Warn, "control API not started: %s (set --control-listen)",
             started_server.status().message());
    }
  }

  if (exit_code == 0) {
    std::string where;
    for (const SocketAddress& address : *addresses) absl::StrAppend(&where, " ", address.toString());
    SR_LOG(Info, "%s listening on%s%s%s (%d workers, %s, open files %d%s)", roleName(role), where,
           tcp ? " tcp" : "", udp ? (udp_port ? " udp" : " udp-associate") : "",
           static_cast<int>(n),
           server ? absl::StrCat(registry->size(), " users")
                  : absl::StrCat(config.method, ", ", env.credentials.provider->name()),
           static_cast<int>(files), "");
    if (print_uri) {
      absl::PrintF("%s\n", makeSsUri(config.method, config.password, public_host, port,
                                     "shadowrelay"));
      std::fflush(stdout);
    }
    EventLoop main_loop;
    Supervisor supervisor(main_loop, pool, workers,
                          std::chrono::seconds(config.drain_timeout_seconds));
    auto signals = SignalWatcher::stopAndReload(
        main_loop, [&supervisor](int signo) { supervisor.onStopSignal(signo); },
        [] { SR_LOG(Info, "SIGHUP: nothing to reload (users change through the control API)"); });
    // Traffic reaches the registry once a second (data quotas, the API's counters); the
    // registry writes its counters to disk every 30 s and at exit.
    int ticks = 0;
    std::optional<Timer> traffic;
    if (registry) {
      traffic.emplace(main_loop, [&] {
        const auto deltas = hub.takeTrafficDeltas();
        if (!deltas.empty()) registry->addTraffic(deltas);
        if (++ticks % 30 == 0) {
          if (auto status = registry->flush(); !status.ok()) {
            SR_LOG(Warn, "users: %s", status.message());
          }
        }
        traffic->armAfter(std::chrono::seconds(1));
      });
      traffic->armAfter(std::chrono::seconds(1));
    }
    main_loop.run();
    traffic.reset();
    signals.reset();
  }

  if (control_server) control_server->shutdown();
  control_server.reset();
  if (server_users) server_users->stop();
  // Each worker fills its own slot (the callbacks run concurrently); the sums are made here.
  std::vector<TcpStats> tcp_per_worker(n);
  std::vector<UdpStats> udp_per_worker(n);
  pool.runOnEachAndWait([&](EventLoop&, size_t i) {
    if (workers[i]) {
      workers[i]->closeUdp();
      workers[i]->publishSample();  // the last traffic, for the registry
      tcp_per_worker[i].add(workers[i]->stats());
      udp_per_worker[i].add(workers[i]->udpTotals());
    }
    workers[i].reset();
  });
  pool.stop();
  if (registry) {
    const auto deltas = hub.takeTrafficDeltas();
    if (!deltas.empty()) registry->addTraffic(deltas);
    if (auto status = registry->flush(); !status.ok()) SR_LOG(Warn, "users: %s", status.message());
  }
  server_users_ptr = nullptr;
  server_users.reset();
  exporter.reset();
  TcpStats total;
  UdpStats udp_total;
  for (size_t i = 0; i < n; ++i) {
    total.add(tcp_per_worker[i]);
    udp_total.add(udp_per_worker[i]);
  }
  SR_LOG(Info, "stopped: tcp %s", total.summary());
  // UDP over TCP counts here too, also on a server without -u.
  if (udp || udp_total.associations > 0) SR_LOG(Info, "stopped: udp %s", udp_total.summary());
  return exit_code;
}

}  // namespace shadowrelay::relay
