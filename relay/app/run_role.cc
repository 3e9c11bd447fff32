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
#include "relay/tcp/worker.h"
#include "relay/udp/udp_client.h"
#include "relay/udp/udp_server.h"

namespace shadowrelay::relay {

namespace {

constexpr int kExitConfig = 2;
constexpr int kExitRuntime = 1;

void fail(Role role, absl::string_view message) {
  absl::FPrintF(stderr, "shadowrelay %s: %s\n", roleName(role), message);
}

/// The password of the embedded default server: read from <state_dir>/password, or drawn at
/// random (192 bits) and stored there (0600, written to a temporary file and renamed, so a
/// crash never leaves half a password). A password rather than a raw key, so that every client
/// accepts the printed ss:// URI.
absl::StatusOr<std::string> loadOrCreatePassword(const std::string& state_dir, bool* created) {
  const std::string path = absl::StrCat(state_dir, "/password");
  std::ifstream in(path);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    std::string password(absl::StripAsciiWhitespace(text.str()));
    if (password.empty()) return absl::DataLossError(absl::StrCat(path, ": empty"));
    *created = false;
    return password;
  }
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::UnavailableError(
        absl::StrCat("state_dir ", state_dir, ": cannot create: ", std::strerror(errno)));
  }
  std::string password = crypto::randomBase64Key(24);
  const std::string tmp = absl::StrCat(path, ".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("state_dir ", state_dir, ": cannot write: ", std::strerror(errno)));
  }
  const std::string line = password + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::UnavailableError(absl::StrCat("state_dir ", state_dir, ": cannot store the password"));
  }
  *created = true;
  return password;
}

/// The address a client would use when the server listens on a wildcard: the first
/// non-loopback IPv4 address of this machine, else 127.0.0.1.
std::string publicHostGuess() {
  ifaddrs* list = nullptr;
  std::string found = "127.0.0.1";
  if (::getifaddrs(&list) != 0) return found;
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

  bool print_uri = false;
  if (role == Role::Server && config.password.empty() && config.key.empty()) {
    if (config.state_dir.empty()) {
      fail(role, "config: password: missing (give -k PASSWORD, --key BASE64, or --state-dir DIR "
                 "to generate one)");
      return kExitConfig;
    }
    bool created = false;
    auto password = loadOrCreatePassword(config.state_dir, &created);
    if (!password.ok()) {
      fail(role, password.status().message());
      return kExitConfig;
    }
    config.password = *password;
    print_uri = true;
    SR_LOG(Info, "%s the password in %s/password", created ? "generated" : "using",
           config.state_dir);
  }
  if (auto status = validateConfig(config); !status.ok()) {
    fail(role, status.message());
    return kExitConfig;
  }
  if (config.check_only) {
    absl::PrintF("%s\n", describe(config));
    return 0;
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
  auto master = crypto::masterKeyFor(**method, config.password, config.key);
  if (!master.ok()) {
    fail(role, absl::StrCat("config: key: ", master.status().message()));
    return kExitConfig;
  }
  env.credentials.method = *method;
  env.credentials.provider = &(*providers)->providerFor(**method);
  env.credentials.master = std::move(*master);
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
  if (role == Role::Server) {
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

  crypto::SaltFilter salt_filter;
  dns::DnsCache dns_cache;
  env.salt_filter = &salt_filter;
  env.dns_cache = &dns_cache;

  SignalWatcher::blockInThisThread(SignalWatcher::stopAndReloadSignals());
  std::signal(SIGPIPE, SIG_IGN);
  const uint64_t files = raiseFileLimit();

  WorkerPool pool(static_cast<size_t>(config.workers));
  const size_t n = pool.size();
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
  std::vector<std::vector<std::unique_ptr<UdpServer>>> udp_servers(n);
  std::vector<std::vector<std::unique_ptr<UdpTunnel>>> udp_tunnels(n);
  // tunnel -u and local -u: the server's address for the UDP associations, resolved once at
  // start-up.
  std::optional<SocketAddress> udp_server_address;
  if (udp && role != Role::Server) {
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
    if (init_status[i].ok()) {
      for (Fd& fd : listen_fds[i]) workers[i]->addListener(std::move(fd));
      for (Fd& fd : udp_fds[i]) {
        if (role == Role::Server) {
          udp_servers[i].push_back(std::make_unique<UdpServer>(*workers[i], std::move(fd),
                                                               env.udp_max_associations));
        } else {
          udp_tunnels[i].push_back(std::make_unique<UdpTunnel>(
              *workers[i], std::move(fd), *udp_server_address, *env.tunnel_target,
              env.udp_max_associations));
        }
      }
    }
  });
  int exit_code = 0;
  for (const absl::Status& status : init_status) {
    if (!status.ok()) {
      fail(role, absl::StrCat("resolver: ", status.message()));
      exit_code = kExitRuntime;
      break;
    }
  }

  if (exit_code == 0) {
    std::string where;
    for (const SocketAddress& address : *addresses) absl::StrAppend(&where, " ", address.toString());
    SR_LOG(Info, "%s listening on%s%s%s (%d workers, %s, %s, open files %d)", roleName(role), where,
           tcp ? " tcp" : "", udp ? (udp_port ? " udp" : " udp-associate") : "",
           static_cast<int>(n), config.method, env.credentials.provider->name(),
           static_cast<int>(files));
    if (print_uri) {
      std::string host = hosts.front();
      if (host == "0.0.0.0" || host == "::") host = publicHostGuess();
      absl::PrintF("%s\n", makeSsUri(config.method, config.password, host, port, "shadowrelay"));
      std::fflush(stdout);
    }
    EventLoop main_loop;
    Supervisor supervisor(main_loop, pool, workers,
                          std::chrono::seconds(config.drain_timeout_seconds));
    auto signals = SignalWatcher::stopAndReload(
        main_loop, [&supervisor](int signo) { supervisor.onStopSignal(signo); },
        [] { SR_LOG(Info, "SIGHUP: nothing to reload (the user table arrives with the API)"); });
    main_loop.run();
    signals.reset();
  }

  // Each worker fills its own slot (the callbacks run concurrently); the sums are made here.
  std::vector<TcpStats> tcp_per_worker(n);
  std::vector<UdpStats> udp_per_worker(n);
  pool.runOnEachAndWait([&](EventLoop&, size_t i) {
    for (auto& server : udp_servers[i]) udp_per_worker[i].add(server->stats());
    udp_servers[i].clear();
    for (auto& tunnel : udp_tunnels[i]) udp_per_worker[i].add(tunnel->stats());
    udp_tunnels[i].clear();
    if (workers[i]) {
      tcp_per_worker[i].add(workers[i]->stats());
      udp_per_worker[i].add(workers[i]->udpStats());
    }
    workers[i].reset();
  });
  pool.stop();
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
