// SPDX-License-Identifier: Apache-2.0
#include "api/app/server_runtime.h"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "api/app/state_dir.h"
#include "api/control/bearer_auth.h"
#include "api/control/bearer_token.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "relay/base/secret_file.h"
#include "relay/event/event_loop.h"
#include "relay/event/signal_watcher.h"
#include "relay/event/timer.h"
#include "relay/log.h"
#include "relay/net/endpoint.h"
#include "relay/ss_uri.h"
#include "relay/stats/tcp_stats.h"
#include "relay/stats/udp_stats.h"
#include "relay/udp/udp2022_server.h"
#include "relay/udp/udp_client.h"
#include "relay/udp/udp_server.h"
#include "relay/upstream/upstream_list.h"
#include "relay/upstream/upstream_prober.h"

namespace shadowrelay::api::app {

using relay::Config;
using relay::EventLoop;
using relay::Fd;
using relay::Role;
using relay::SocketAddress;

namespace {

absl::Status configError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

absl::Status runtimeError(absl::string_view message) { return absl::UnavailableError(message); }

/// TEST ONLY (not a flag, not in --help): seconds added to the wall clock of the user registry
/// (expiry, quota periods), so that an end-to-end test can cross a period boundary in a real
/// process. Nothing else sees the offset (the 2022 timestamps keep the true time).
constexpr char kTestClockOffsetVariable[] = "SHADOWRELAY_TEST_CLOCK_OFFSET_SECONDS";

absl::Duration testClockOffset() {
  const char* text = std::getenv(kTestClockOffsetVariable);
  int64_t seconds = 0;
  if (text == nullptr || !absl::SimpleAtoi(text, &seconds)) return absl::ZeroDuration();
  return absl::Seconds(seconds);
}

/// The users of the config file ("users") and of -k/--key ("default"), for the registry.
std::vector<users::User> configuredUsers(const Config& config) {
  std::vector<users::User> out;
  for (const relay::ConfigUser& from : config.users) {
    users::User user;
    user.name = from.name;
    user.method = from.method.empty() ? config.method : from.method;
    user.password = from.password;
    user.key = from.key;
    user.port = from.port == config.server_port ? 0 : from.port;
    user.plugin = from.plugin;
    user.plugin_opts = from.plugin_opts;
    // Validated by the config parser.
    if (!from.expire_time.empty()) {
      absl::Time t;
      std::string ignored;
      if (absl::ParseTime(absl::RFC3339_full, from.expire_time, &t, &ignored)) user.expire_time = t;
    }
    user.limits.expire_after_first_use = absl::Seconds(from.expire_after_first_use);
    user.limits.data_quota_bytes = from.data_quota_bytes;
    if (!from.data_quota_period.empty()) {
      user.limits.data_quota_period =
          users::parseQuotaPeriod(from.data_quota_period).value_or(users::QuotaPeriod::None);
    }
    user.limits.max_devices = from.max_devices;
    user.limits.bytes_per_second = from.bytes_per_second;
    user.source = users::UserSource::Config;
    out.push_back(std::move(user));
  }
  if (!config.password.empty() || !config.key.empty()) {
    users::User user;
    user.name = "default";
    user.method = config.method;
    user.password = config.password;
    user.key = config.key;
    user.source = users::UserSource::Default;
    out.push_back(std::move(user));
  }
  return out;
}

/// The port of a "host:port" listen setting (0 for "off", unix sockets and port 0).
uint16_t listenPort(const std::string& listen) {
  auto endpoint = relay::Endpoint::parse(listen, relay::Endpoint::Port::AnyOrZero);
  return endpoint.ok() ? endpoint->port : 0;
}

std::vector<std::string> addressTexts(const std::vector<SocketAddress>& addresses) {
  std::vector<std::string> out;
  for (const SocketAddress& address : addresses) out.push_back(address.toString());
  return out;
}

}  // namespace

int exitCodeFor(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitConfig : kExitRuntime;
}

/// Drives the graceful stop from the main thread's loop.
class ServerRuntime::Supervisor {
 public:
  Supervisor(EventLoop& main, ServerRuntime& runtime, std::chrono::seconds drain)
      : main_(main), runtime_(runtime), drain_(drain), poll_(main, [this] { poll(); }) {}

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
    runtime_.pool_->runOnEachAndWait(
        [this](EventLoop&, size_t i) { runtime_.workers_[i]->stopAccepting(); });
    poll();
  }

 private:
  void poll() {
    auto open = std::make_shared<std::atomic<size_t>>(0);
    runtime_.pool_->runOnEachAndWait(
        [this, open](EventLoop&, size_t i) { *open += runtime_.workers_[i]->sessionCount(); });
    if (*open == 0 || main_.now() >= deadline_) {
      if (*open > 0) SR_LOG(Info, "drain deadline: closing %d sessions", *open);
      finish();
      return;
    }
    poll_.armAfter(std::chrono::milliseconds(100));
  }

  void finish() {
    poll_.cancel();
    runtime_.pool_->runOnEachAndWait(
        [this](EventLoop&, size_t i) { runtime_.workers_[i]->closeAllSessions(); });
    main_.stop();
  }

  EventLoop& main_;
  ServerRuntime& runtime_;
  const std::chrono::seconds drain_;
  relay::Timer poll_;
  bool draining_ = false;
  relay::TimePoint deadline_;
};

ServerRuntime::ServerRuntime(Config config) {
  env_.config = std::move(config);
  server_ = config_.role == Role::Server;
  tcp_ = config_.mode != relay::Mode::UdpOnly;
  udp_ = config_.mode != relay::Mode::TcpOnly;
  // local -u has no shared UDP port: each SOCKS5 UDP ASSOCIATE binds a socket of its own.
  udp_port_ = udp_ && config_.role != Role::Local;
  const auto method = crypto::findAnyMethod(config_.method);
  udp2022_ = server_ && udp_port_ && method.ok() &&
             (*method)->edition == crypto::Edition::Aead2022;
}

ServerRuntime::~ServerRuntime() { stop(); }

absl::Status ServerRuntime::start() {
  started_ = true;
  // First: every thread started from here on (the etcd client's and gRPC's among them)
  // inherits the mask, so SIGTERM reaches only the main loop's signal watcher.
  relay::SignalWatcher::blockInThisThread(relay::SignalWatcher::stopAndReloadSignals());
  if (absl::Status s = loadSecrets(); !s.ok()) return s;
  if (absl::Status s = prepareEnv(); !s.ok()) return s;
  auto plugin = relay::Sip003Plugin::create(config_, addresses_, udp_port_);
  if (!plugin.ok()) return plugin.status();
  plugin_ = std::move(*plugin);
  if (server_) {
    if (absl::Status s = openRegistry(); !s.ok()) return s;
  }
  if (config_.allow_insecure_ciphers) warnInsecureCiphers();
  if (config_.check_only) {
    absl::PrintF("%s", relay::checkReport(config_));
    return absl::OkStatus();
  }
  if (absl::Status s = startUpstreams(); !s.ok()) return s;
  if (server_) {
    replay_filters_ = ReplayFilters::open(config_.state_dir);
    env_.salt_filter = &replay_filters_->tcp();
    env_.udp_salt_filter = &replay_filters_->udp();
  }
  salt_store_2022_ = std::make_unique<crypto::SaltStore2022>();
  dns::DnsCache::Options cache;
  cache.capacity = static_cast<size_t>(config_.dns_cache_size);
  cache.min_ttl = std::chrono::seconds(config_.dns_min_ttl_seconds);
  cache.max_ttl = std::chrono::seconds(config_.dns_max_ttl_seconds);
  cache.negative_ttl = std::chrono::seconds(config_.dns_negative_ttl_seconds);
  dns_cache_ = std::make_unique<dns::DnsCache>(cache);
  env_.salt_store_2022 = salt_store_2022_.get();
  env_.dns_cache = dns_cache_.get();
  if (server_ && !config_.allow_private) {
    host_addresses_ = relay::HostAddresses::watch();
    env_.host_addresses = host_addresses_.get();
  }
  if (server_ && !config_.forbidden_ip.empty()) {
    auto forbidden = relay::IpNetworks::parse(config_.forbidden_ip);  // validated already
    if (!forbidden.ok()) {
      return configError(absl::StrCat("config: forbidden_ip: ", forbidden.status().message()));
    }
    forbidden_targets_ = std::make_unique<relay::IpNetworks>(*std::move(forbidden));
    env_.forbidden_targets = forbidden_targets_.get();
  }
  if (!config_.acl.empty()) {
    auto acl = relay::Acl::load(config_.acl);  // validated already; read again for the slot
    if (!acl.ok()) return configError(absl::StrCat("config: acl: ", acl.status().message()));
    SR_LOG(Info, "acl %s: %d rules, %s by default", config_.acl,
           static_cast<int>((*acl)->ruleCount()),
           (*acl)->bypassByDefault() ? "bypass" : "proxy");
    acl_ = std::make_unique<relay::AclSlot>(*std::move(acl));
    env_.acl = acl_.get();
  }

  std::signal(SIGPIPE, SIG_IGN);
  // -n/--nofile, else the soft limit raised to the hard one (issue 15 §4).
  auto files = relay::setFileLimit(static_cast<uint64_t>(config_.nofile));
  if (!files.ok()) return configError(files.status().message());
  if (server_ && config_.max_preauth_per_source > 0) {
    source_limiter_ = std::make_unique<relay::SourceLimiter>(
        static_cast<uint32_t>(config_.max_preauth_per_source));
    env_.source_limiter = source_limiter_.get();
  }

  pool_ = std::make_unique<relay::WorkerPool>(static_cast<size_t>(config_.workers));
  if (absl::Status s = startExporter(); !s.ok()) return s;
  hub_ = std::make_unique<SampleHub>(pool_->size(), exporter_.get());
  env_.observer = hub_.get();
  if (absl::Status s = bindListeners(); !s.ok()) return s;
  if (absl::Status s = startPlugin(); !s.ok()) return s;
  // -p 0: the access URLs and messages name the port the listeners got.
  if (server_) registry_->setSharedPort(addresses_.front().port());
  if (absl::Status s = startWorkers(); !s.ok()) return s;
  started_at_ = absl::Now();
  if (control_wanted_) {
    if (absl::Status s = startControl(); !s.ok()) return s;
  }

  SR_LOG(Info, "%s listening on %s%s%s (%d workers, %s, open files %d)",
         relay::roleName(config_.role), absl::StrJoin(addressTexts(addresses_), " "),
         tcp_ ? " tcp" : "", udp_ ? (udp_port_ ? " udp" : " udp-associate") : "",
         static_cast<int>(pool_->size()),
         server_ ? absl::StrCat(registry_->size(), " users")
                 : absl::StrCat(config_.method, ", ", env_.credentials.provider->name()),
         static_cast<int>(*files));
  SR_LOG(Info, "%s", readyLine());
  if (print_uri_) {
    // What a client of the generated key uses; nothing where that key is only the shared
    // port's identity key (2022 users on it: their access URLs carry it).
    auto user = registry_->get("default");
    const std::string password = user.ok() ? registry_->clientPassword(*user) : "";
    if (!password.empty()) {
      absl::PrintF("%s\n", relay::makeSsUri(config_.method, password, public_host_,
                                            addresses_.front().port(), "shadowrelay",
                                            plugin_ ? plugin_->uriParameter() : ""));
      std::fflush(stdout);
    }
  }
  return absl::OkStatus();
}

absl::Status ServerRuntime::loadSecrets() {
  Config& config = env_.config;
  // The state directory holds secrets (the password, the control token, the users' keys):
  // 0700 whatever it was, before anything is read from it or written to it.
  if (server_ && !config.state_dir.empty() && !config.check_only) {
    auto note = relay::makePrivateDirectory(config.state_dir, "state_dir");
    if (!note.ok()) return runtimeError(note.status().message());
    if (!note->empty()) SR_LOG(Warn, "%s", *note);
  }
  if (absl::Status s = relay::applyServerUrl(config); !s.ok()) return configError(s.message());
  // The server's embedded default: with a state directory and no user at all, a password is
  // generated once, kept there, and the ss:// URI printed. For a 2022 method it is the PSK (the
  // method's key size), and the shared port's identity key once API users join it. Not with
  // an etcd store: each replica would generate a different one; its users come from etcd.
  if (server_ && config.password.empty() && config.key.empty() && config.users.empty() &&
      !config.state_dir.empty() && relay::etcdEndpointList(config).empty()) {
    bool created = false;
    auto method = crypto::findAnyMethod(config.method);
    const bool is2022 = method.ok() && (*method)->edition == crypto::Edition::Aead2022;
    const size_t size = is2022 ? (*method)->key_size : 24;
    auto make = [size] { return crypto::randomBase64Key(size); };
    // A 2022 method needs a PSK of its key size. The directory may already hold another
    // method's password (the 2017 default's, or a 2022 PSK of the other size): then this
    // method's PSK is kept beside it, in password-<method>, and neither replaces the other.
    std::string file = "password";
    if (is2022) {
      bool missing = false;
      auto existing = loadOrCreateSecret(config.state_dir, file, make, /*persist=*/false, &missing);
      if (existing.ok() && !missing && !crypto::decodePsk(*existing, **method).ok()) {
        file = absl::StrCat("password-", (*method)->name);
      }
    }
    auto password = loadOrCreateSecret(config.state_dir, file, make, !config.check_only, &created);
    if (!password.ok()) return configError(password.status().message());
    config.password = *password;
    print_uri_ = true;
    SR_LOG(Info, "%s the password in %s/%s",
           !created ? "using" : config.check_only ? "would generate" : "generated",
           config.state_dir, file);
  }
  if (absl::Status status = relay::validateConfig(config); !status.ok()) {
    return configError(status.message());
  }
  // The control API needs a token; without one it stays off unless it was asked for.
  control_wanted_ = server_ && config.control_listen != relay::kListenOff;
  if (control_wanted_) {
    auto token = control::loadControlToken(config.control_token_file,
                                           std::getenv(control::kControlTokenEnv));
    if (token.ok() && token->empty() && !config.state_dir.empty()) {
      bool created = false;
      token = loadOrCreateSecret(
          config.state_dir, "control_token", [] { return crypto::randomBase64Key(32); },
          !config.check_only, &created);
      if (token.ok()) {
        SR_LOG(Info, "control API token %s %s/control_token",
               !created ? "read from"
               : config.check_only ? "would be generated in"
                                   : "generated in",
               config.state_dir);
      }
    }
    if (!token.ok()) {
      return configError(absl::StrCat("config: control_token_file: ", token.status().message()));
    }
    control_token_ = *token;
    const bool tls = !config.control_tls_cert.empty() || !config.control_tls_key.empty();
    if (absl::Status s = control::checkControlTransport(config.control_listen, tls,
                                                        config.control_insecure_plaintext);
        !s.ok() && !control_token_.empty()) {
      return configError(s.message());
    }
    if (control_token_.empty()) {
      if (config.control_listen_given) {
        return configError(
            "config: control_listen: the control API needs a token (give "
            "--control-token-file FILE, $SHADOWRELAY_CONTROL_TOKEN or --state-dir DIR)");
      }
      control_wanted_ = false;
      SR_LOG(Info, "control API off: no token (give --control-token-file, "
                   "$SHADOWRELAY_CONTROL_TOKEN or --state-dir)");
    }
  }
  if (!config.metrics_token_file.empty()) {
    auto token = control::loadBearerToken(config.metrics_token_file, "metrics-token-file");
    if (!token.ok()) {
      return configError(absl::StrCat("config: metrics_token_file: ", token.status().message()));
    }
    metrics_token_ = *std::move(token);
  }
  if (server_ && config.password.empty() && config.key.empty() && config.users.empty() &&
      !control_wanted_) {
    return configError(
        "config: password: missing (give -k PASSWORD, --key BASE64, users in the config file, "
        "--state-dir DIR to generate one, or a control token to add users through the API)");
  }
  return absl::OkStatus();
}

absl::Status ServerRuntime::prepareEnv() {
  const Config& config = config_;
  if (config.mode == relay::Mode::UdpOnly && config.role == Role::Local) {
    return configError(
        "config: mode: local relays UDP through SOCKS5 UDP ASSOCIATE, which needs its TCP "
        "port: use tcp_and_udp (-u), not udp_only (-U)");
  }
  auto choice = crypto::parseProviderChoice(config.crypto_provider);
  if (!choice.ok()) return configError(choice.status().message());
  auto providers = crypto::CryptoProviders::create(*choice);
  if (!providers.ok()) return configError(providers.status().message());
  providers_ = std::move(*providers);
  if (!server_) {
    // Every server with its own credentials; the first one's are env_.credentials.
    auto upstreams = relay::makeUpstreams(config, *providers_);
    if (!upstreams.ok()) {
      return configError(absl::StrCat("config: ", upstreams.status().message()));
    }
    upstream_list_ = *std::move(upstreams);
    env_.credentials = upstream_list_.front().credentials;
  }
  env_.idle_timeout = std::chrono::seconds(config.timeout_seconds);
  env_.handshake_timeout = std::chrono::seconds(config.handshake_timeout_seconds);
  env_.connect_timeout = std::chrono::seconds(config.connect_timeout_seconds);
  env_.preference =
      config.ipv6_first ? dns::AddressPreference::Ipv6First : dns::AddressPreference::Ipv4First;
  // SHADOWRELAY_IO_URING=0 turns the batched io_uring I/O off (plain recv/send per event).
  const char* uring = std::getenv("SHADOWRELAY_IO_URING");
  env_.io_uring = uring == nullptr || std::strcmp(uring, "0") != 0;
  env_.udp_timeout = std::chrono::seconds(config.udp_timeout_seconds);
  env_.udp_max_associations = static_cast<size_t>(config.udp_max_associations);
  if (config.tunnel_destination) env_.tunnel_target = config.tunnel_destination->socksAddress();

  std::vector<std::string> hosts;
  uint16_t port = 0;
  if (server_) {
    hosts = config.server_hosts.empty() ? std::vector<std::string>{"0.0.0.0"}
                                        : config.server_hosts;
    port = config.server_port;
  } else {
    hosts = {config.local_address};
    port = config.local_port;
  }
  auto addresses = relay::resolveAtStartup(hosts, port);
  if (!addresses.ok()) {
    return configError(absl::StrCat("server: ", addresses.status().message()));
  }
  addresses_ = std::move(*addresses);
  public_host_ = config.public_host;
  if (public_host_.empty()) {
    public_host_ = hosts.front();
    if (public_host_ == "0.0.0.0" || public_host_ == "::") public_host_ = publicHostGuess();
  }
  return absl::OkStatus();
}

void ServerRuntime::warnInsecureCiphers() const {
  std::vector<std::string> in_use;
  if (registry_ != nullptr) {
    in_use = registry_->insecureMethodsInUse();
  } else if (const crypto::MethodInfo* m = *crypto::findAnyMethod(config_.method);
             crypto::isStream(*m)) {
    in_use.emplace_back(m->name);
  }
  SR_LOG(Warn,
         "--allow-insecure-ciphers: legacy stream methods are accepted; they have no integrity "
         "protection (a known address prefix lets an attacker redirect and read the traffic) "
         "and only the IV replay filter; in use: %s",
         in_use.empty() ? std::string("none yet") : absl::StrJoin(in_use, ", "));
}

absl::Status ServerRuntime::startUpstreams() {
  if (server_) return absl::OkStatus();
  // UDP (tunnel -u, local -u) needs each server's address: resolved once, here.
  if (absl::Status s = relay::resolveUpstreams(upstream_list_, udp_); !s.ok()) {
    return configError(s.message());
  }
  // With a plugin (one server) TCP goes to the plugin's local port; UDP keeps the server.
  if (plugin_) upstream_list_.front().address = plugin_->relayConnect().socksAddress();
  // local -u: also what tells the SOCKS5 front that UDP ASSOCIATE is offered.
  if (udp_) env_.udp_server = upstream_list_.front().resolved;
  upstreams_ = std::make_unique<relay::UpstreamBalancer>(std::move(upstream_list_));
  env_.upstreams = upstreams_.get();
  if (upstreams_->size() > 1) {
    SR_LOG(Info, "%d servers, probed every %d s", static_cast<int>(upstreams_->size()),
           config_.server_probe_interval_seconds);
  }
  return absl::OkStatus();
}

absl::Status ServerRuntime::openRegistry() {
  users::RegistryOptions options;
  // --check-config validates the configured users the same way, without the store.
  if (!config_.check_only) options.state_dir = config_.state_dir;
  options.default_method = std::string((*crypto::findAnyMethod(config_.method))->name);
  options.default_method_given = config_.method_given;
  options.configured_users = configuredUsers(config_);
  options.shared_port = config_.server_port;
  if (udp_port_) options.shared_port_udp_method = options.default_method;
  options.allow_insecure_ciphers = config_.allow_insecure_ciphers;
  options.max_users = static_cast<size_t>(config_.max_users);
  if (const absl::Duration offset = testClockOffset(); offset != absl::ZeroDuration()) {
    options.now = [offset] { return absl::Now() + offset; };
    SR_LOG(Warn, "%s: the user registry's clock is off by %s (for tests only)",
           kTestClockOffsetVariable, absl::FormatDuration(offset));
  }
  options.device_window = std::chrono::seconds(config_.device_window_seconds);
  options.default_bytes_per_second = static_cast<uint64_t>(config_.default_bytes_per_second);
  for (const std::string* listen : {&config_.control_listen, &config_.metrics_listen}) {
    if (const uint16_t reserved = listenPort(*listen); reserved != 0) {
      options.reserved_ports.push_back(reserved);
    }
  }
  options.providers = providers_.get();
  // A dedicated port must be bindable; before the workers run, nothing is checked.
  options.port_check = [this](uint16_t user_port) {
    return server_users_ != nullptr ? server_users_->checkPort(user_port) : absl::OkStatus();
  };
  // A dedicated port's plugin holds its public TCP port (ServerUsers runs it).
  options.plugin_check = [this](const std::string& plugin) -> absl::Status {
    if (config_.mode == relay::Mode::UdpOnly) {
      return absl::FailedPreconditionError("a plugin carries TCP; this server is udp_only");
    }
    if (config_.server_hosts.size() > 1) {
      return absl::FailedPreconditionError(
          "a plugin listens on one address; this server listens on several (-s)");
    }
    const char* path_env = std::getenv("PATH");
    return relay::findExecutable(plugin, path_env != nullptr ? path_env : "/usr/bin:/bin")
        .status();
  };
  if (!config_.check_only) {
    if (absl::Status s = openSharedStore(); !s.ok()) return s;
    options.shared_store = shared_store_.get();
  }
  auto opened = users::UserRegistry::open(std::move(options));
  if (!opened.ok()) return configError(absl::StrCat("users: ", opened.status().message()));
  registry_ = std::move(*opened);
  if (shared_store_) shared_store_->start(registry_.get());
  return absl::OkStatus();
}

absl::Status ServerRuntime::openSharedStore() {
  const std::vector<std::string> endpoints = relay::etcdEndpointList(config_);
  if (endpoints.empty()) return absl::OkStatus();
  etcd::EtcdOptions client;
  client.endpoints = endpoints;
  client.ca_file = config_.etcd_ca;
  client.cert_file = config_.etcd_cert;
  client.key_file = config_.etcd_key;
  client.user = config_.etcd_user;
  if (!config_.etcd_password_file.empty()) {
    auto password = relay::readSecretFile(config_.etcd_password_file, "etcd_password_file");
    if (!password.ok()) return configError(password.status().message());
    client.password = std::string(absl::StripTrailingAsciiWhitespace(*password));
  }
  users::EtcdStoreOptions options;
  options.prefix = config_.etcd_prefix;
  options.replica_id = config_.replica_id;
  if (options.replica_id.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::strcpy(host, "server");
    std::string name(host);
    for (char& c : name) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
    }
    std::random_device random;
    options.replica_id = absl::StrFormat("%s-%08x", name.substr(0, 48), random());
  }
  options.sync_interval = absl::Seconds(config_.etcd_sync_interval);
  options.lease_ttl_seconds = config_.etcd_lease_ttl;
  auto store = users::EtcdUserStore::create(std::move(client), std::move(options));
  if (!store.ok()) return configError(store.status().message());
  shared_store_ = *std::move(store);
  SR_LOG(Info, "users are shared through etcd %s, prefix %s, as replica %s",
         absl::StrJoin(endpoints, ","), config_.etcd_prefix, shared_store_->stats().replica_id);
  return absl::OkStatus();
}

absl::Status ServerRuntime::startExporter() {
  if (config_.metrics_listen == relay::kListenOff) return absl::OkStatus();
  metrics::MetricsOptions options;
  options.listen = config_.metrics_listen;
  options.token = metrics_token_;
  options.workers = pool_->size();
  options.per_user = config_.metrics_per_user;
  options.version = relay::kShadowrelayVersion;
  options.crypto_provider =
      std::string(providers_->providerFor(**crypto::findAnyMethod(config_.method)).name());
  if (plugin_) {
    options.plugin = plugin_->name();
    options.plugin_restarts = [count = plugin_->restartCounter()] { return count->load(); };
  }
  if (!server_) {
    // Read at each scrape: the balancer is made later and outlives the exporter.
    options.upstreams = [this] {
      std::vector<metrics::UpstreamSample> out;
      if (upstreams_ == nullptr) return out;
      for (const relay::UpstreamState& state : upstreams_->states()) {
        out.push_back({state.label, state.up,
                       state.latency ? std::chrono::duration<double>(*state.latency).count() : -1,
                       state.connect_failures, state.sessions});
      }
      return out;
    };
  }
  if (users::EtcdUserStore* store = shared_store_.get(); store != nullptr) {
    options.store = [store] {
      const users::EtcdUserStore::Stats stats = store->stats();
      metrics::StoreSample sample;
      for (const auto& [key, count] : stats.requests) {
        sample.requests.push_back({key.first, key.second, count});
      }
      sample.up = stats.up;
      sample.revision = stats.revision;
      sample.last_sync_unix_seconds =
          stats.last_sync == absl::InfinitePast() ? 0 : absl::ToDoubleSeconds(stats.last_sync - absl::UnixEpoch());
      sample.watch_lag_seconds = stats.watch_lag_seconds;
      return sample;
    };
  }
  users::UserRegistry* registry = registry_.get();
  if (registry != nullptr) {
    options.users_by_state = [registry] {
      const auto counts = registry->countByState();
      std::vector<std::pair<std::string, size_t>> out;
      for (size_t i = 0; i < counts.size(); ++i) {
        out.emplace_back(users::stateName(static_cast<users::UserState>(i)), counts[i]);
      }
      return out;
    };
    options.user_quotas = [registry] {
      std::vector<metrics::UserQuotaSample> out;
      for (users::UserRegistry::QuotaUsage& u : registry->quotaUsage()) {
        out.push_back({std::move(u.name), u.used_bytes, u.quota_bytes});
      }
      return out;
    };
    // The trackers the workers share, read from the current table.
    options.user_devices = [registry] {
      std::vector<std::pair<std::string, size_t>> out;
      registry->snapshot()->forEach([&](const relay::RelayUser& user) {
        out.emplace_back(user.name, user.live->devices->count(user.device_window));
      });
      return out;
    };
  }
  if (config_.allow_insecure_ciphers) {
    // The server: its users' stream methods now; a client: its one method.
    const crypto::MethodInfo* own = *crypto::findAnyMethod(config_.method);
    options.insecure_methods = [registry, own]() -> std::vector<std::string> {
      if (registry != nullptr) return registry->insecureMethodsInUse();
      if (crypto::isStream(*own)) return {std::string(own->name)};
      return {};
    };
  }
  auto started = metrics::MetricsExporter::start(std::move(options));
  if (started.ok()) {
    exporter_ = std::move(*started);
    SR_LOG(Info, "metrics on http://%s/metrics (%s)", exporter_->address(),
           metrics_token_.empty() ? "no token" : "bearer token");
  } else if (config_.metrics_listen_given) {
    return runtimeError(absl::StrCat("metrics_listen: ", started.status().message()));
  } else {
    SR_LOG(Warn, "metrics not served: %s (set --metrics-listen)", started.status().message());
  }
  return absl::OkStatus();
}

absl::Status ServerRuntime::bindListeners() {
  // On this thread, before the workers run, so that a bind error ends start-up cleanly. Port 0
  // takes the port the first socket got, for every worker and for UDP too. The kernel picks it
  // for the first protocol only: when the port TCP got is taken for UDP, another is picked.
  constexpr int kAnyPortAttempts = 16;
  const size_t n = pool_->size();
  tcp_fds_.clear();
  tcp_fds_.resize(n);
  udp_fds_.clear();
  udp_fds_.resize(n);
  for (SocketAddress& address : addresses_) {
    const bool any_port = address.port() == 0;
    absl::Status status;
    for (int attempt = 0; attempt < (any_port ? kAnyPortAttempts : 1); ++attempt) {
      if (any_port) address.setPort(0);
      status = bindAddress(address, any_port);
      if (status.ok()) break;
    }
    if (!status.ok()) return runtimeError(status.message());
  }
  return absl::OkStatus();
}

absl::Status ServerRuntime::bindAddress(SocketAddress& address, bool any_port) {
  const size_t n = pool_->size();
  std::vector<Fd> tcp;
  std::vector<Fd> udp;
  relay::ListenOptions options;
  options.reuse_port = config_.reuse_port;
  options.fast_open = config_.fast_open;
  Fd shared;
  // A server's --plugin listens on `address`; our TCP listener goes behind it, on loopback.
  SocketAddress& tcp_address = plugin_ && server_ ? plugin_->relayListen() : address;
  for (size_t i = 0; tcp_ && i < n; ++i) {
    if (config_.reuse_port || i == 0) {
      auto fd = relay::listenTcp(tcp_address, options);
      if (!fd.ok()) return fd.status();
      if (tcp_address.port() == 0) tcp_address.setPort(relay::localAddress(fd->get()).port());
      if (config_.reuse_port) {
        tcp.push_back(std::move(*fd));
        continue;
      }
      shared = std::move(*fd);
    }
    tcp.push_back(Fd(::fcntl(shared.get(), F_DUPFD_CLOEXEC, 0)));
  }
  // A 2022 server port is one socket, on the first worker, held by nobody else: its sessions
  // are keyed by session ID, which the kernel's SO_REUSEPORT hash (by 4-tuple) cannot follow
  // when a client's source port changes (relay/udp/udp2022_server.h; docs/PERFORMANCE.md).
  const size_t udp_sockets = udp2022_ ? 1 : n;
  for (size_t i = 0; udp_port_ && i < udp_sockets; ++i) {
    // SO_REUSEPORT: the kernel hashes each client's datagrams to one worker, so its
    // association lives on one loop. With port 0 (or --no-reuse-port) the first socket binds
    // without it, so that it gets a port nobody holds rather than joining another process's
    // sockets there; the workers after it join it. A given port is shared as TCP's is.
    const bool exclusive_first = any_port || !config_.reuse_port || udp2022_;
    auto fd = relay::bindUdp(address, /*reuse_port=*/i > 0 || !exclusive_first);
    if (!fd.ok()) return fd.status();
    if (i == 0 && udp_sockets > 1 && exclusive_first) relay::openReusePortGroup(fd->get());
    if (address.port() == 0) address.setPort(relay::localAddress(fd->get()).port());
    udp.push_back(std::move(*fd));
  }
  for (size_t i = 0; i < n; ++i) {
    if (tcp_) tcp_fds_[i].push_back(std::move(tcp[i]));
    if (i < udp.size()) udp_fds_[i].push_back(std::move(udp[i]));
  }
  return absl::OkStatus();
}

absl::Status ServerRuntime::startWorkers() {
  const size_t n = pool_->size();
  pool_->start();
  workers_.resize(n);
  std::vector<absl::Status> init(n);
  pool_->runOnEachAndWait([&](EventLoop& loop, size_t i) {
    relay::log::setThreadName(absl::StrCat("worker-", i));
    workers_[i] = std::make_unique<relay::Worker>(loop, env_, i);
    init[i] = workers_[i]->init();
  });
  for (const absl::Status& status : init) {
    if (!status.ok()) return runtimeError(absl::StrCat("resolver: ", status.message()));
  }
  // The users reach every worker (posted first, so before any connection is accepted).
  if (server_) {
    ListenPlan plan;
    plan.addresses = addresses_;
    plan.tcp = tcp_;
    plan.udp = udp_port_;
    plan.options.reuse_port = config_.reuse_port;
    plan.options.fast_open = config_.fast_open;
    server_users_ = std::make_unique<ServerUsers>(*registry_, *pool_, workers_, plan);
    server_users_->start();
  }
  pool_->runOnEachAndWait([&](EventLoop&, size_t i) {
    relay::Worker& worker = *workers_[i];
    for (Fd& fd : tcp_fds_[i]) worker.addListener(std::move(fd));
    for (Fd& fd : udp_fds_[i]) {
      if (udp2022_) {
        worker.addUdpPort(std::make_unique<relay::Udp2022Server>(worker, std::move(fd),
                                                                 env_.udp_max_associations));
      } else if (server_) {
        worker.addUdpPort(
            std::make_unique<relay::UdpServer>(worker, std::move(fd), env_.udp_max_associations));
      } else {
        worker.addUdpPort(std::make_unique<relay::UdpTunnel>(
            worker, std::move(fd), *env_.tunnel_target, env_.udp_max_associations));
      }
    }
  });
  tcp_fds_.clear();
  udp_fds_.clear();
  return absl::OkStatus();
}

absl::Status ServerRuntime::startPlugin() {
  if (!plugin_) return absl::OkStatus();
  if (!server_) {  // TCP reaches the server through the plugin; UDP keeps env_.udp_server
    env_.config.server_hosts = {plugin_->relayConnect().host};
    env_.config.server_port = plugin_->relayConnect().port;
  }
  return plugin_->start();
}

control::RelayStatus ServerRuntime::status() const {
  control::RelayStatus status;
  status.version = relay::kShadowrelayVersion;
  status.uptime = absl::Now() - started_at_;
  status.workers = static_cast<uint32_t>(pool_->size());
  for (const SocketAddress& address : addresses_) {
    const std::string host = relay::Endpoint::fromSocketAddress(address).host;
    if (tcp_) status.listeners.push_back({host, address.port(), "tcp", ""});
    if (udp_port_) status.listeners.push_back({host, address.port(), "udp", ""});
  }
  for (auto& listener : server_users_->dedicatedListeners()) {
    status.listeners.push_back(std::move(listener));
  }
  status.active_tcp_sessions = hub_->activeTcpSessions();
  status.udp_associations = hub_->udpAssociations();
  return status;
}

absl::Status ServerRuntime::startControl() {
  control::ControlServerOptions options;
  options.listen = config_.control_listen;
  options.token = control_token_;
  options.tls_cert_file = config_.control_tls_cert;
  options.tls_key_file = config_.control_tls_key;
  options.tls_client_ca_file = config_.control_tls_client_ca;
  options.insecure_plaintext = config_.control_insecure_plaintext;
  options.public_host = public_host_;
  if (plugin_) options.shared_port_plugin = plugin_->uriParameter();
  options.show_client_addresses = config_.show_client_addresses;
  options.providers = providers_.get();
  options.status = [this] { return status(); };
  auto started = control::ControlServer::start(std::move(options), *registry_);
  if (started.ok()) {
    control_ = std::move(*started);  // ControlServer::start logged it
  } else if (config_.control_listen_given) {
    return runtimeError(absl::StrCat("control_listen: ", started.status().message()));
  } else {
    SR_LOG(Warn, "control API not started: %s (set --control-listen)",
           started.status().message());
  }
  return absl::OkStatus();
}

void ServerRuntime::reload() {
  if (acl_ == nullptr) {
    SR_LOG(Info, "SIGHUP: nothing to reload (users change through the control API)");
    return;
  }
  // A bad file keeps the ACL in force: a typo must not open or close the relay.
  auto acl = relay::Acl::load(config_.acl);
  if (!acl.ok()) {
    SR_LOG(Error, "SIGHUP: acl not reloaded, keeping the current one: %s", acl.status().message());
    return;
  }
  SR_LOG(Info, "SIGHUP: acl %s reloaded: %d rules, %s by default", config_.acl,
         static_cast<int>((*acl)->ruleCount()), (*acl)->bypassByDefault() ? "bypass" : "proxy");
  acl_->set(*std::move(acl));
}

std::string ServerRuntime::readyLine() const {
  std::string line = absl::StrCat("ready: ", relay::roleName(config_.role));
  for (const SocketAddress& address : addresses_) {
    if (tcp_) absl::StrAppend(&line, " tcp=", address.toString());
    if (udp_port_) absl::StrAppend(&line, " udp=", address.toString());
  }
  if (control_) absl::StrAppend(&line, " control=", control_->address());
  if (exporter_) absl::StrAppend(&line, " metrics=", exporter_->address());
  return line;
}

void ServerRuntime::saveReplayFilters() {
  if (absl::Status s = replay_filters_->save(); !s.ok()) {
    SR_LOG(Warn, "replay filter not saved: %s", s.message());
  }
}

void ServerRuntime::forwardTraffic() {
  const auto deltas = hub_->takeTrafficDeltas();
  if (!deltas.empty()) registry_->addTraffic(deltas);
}

void ServerRuntime::run() {
  EventLoop main_loop;
  Supervisor supervisor(main_loop, *this, std::chrono::seconds(config_.drain_timeout_seconds));
  auto signals = relay::SignalWatcher::stopAndReload(
      main_loop, [&supervisor](int signo) { supervisor.onStopSignal(signo); },
      [this] { reload(); });
  // Traffic reaches the registry once a second (data quotas, the API's counters); the
  // registry writes its counters to disk every 30 s and at exit.
  int ticks = 0;
  std::optional<relay::Timer> traffic;
  if (registry_) {
    traffic.emplace(main_loop, [&] {
      forwardTraffic();
      if (++ticks % 30 == 0) {
        if (auto status = registry_->flush(); !status.ok()) {
          SR_LOG(Warn, "users: %s", status.message());
        }
      }
      traffic->armAfter(std::chrono::seconds(1));
    });
    traffic->armAfter(std::chrono::seconds(1));
  }
  // Expiry and quota periods: a new table at the registry's next deadline. The deadline moves
  // with every change (a new expire_time, a first use), so it is looked at again every second.
  std::optional<relay::Timer> deadlines;
  if (registry_) {
    auto untilDeadline = [this] {
      const absl::Duration left = registry_->nextDeadline() - registry_->now();
      return absl::ToChronoMilliseconds(
          std::clamp(left + absl::Milliseconds(1), absl::Milliseconds(1), absl::Seconds(1)));
    };
    deadlines.emplace(main_loop, [&deadlines, untilDeadline, this] {
      registry_->tick();
      deadlines->armAfter(untilDeadline());
    });
    deadlines->armAfter(untilDeadline());
  }
  // local/tunnel with several servers: the probes run on this loop.
  std::optional<relay::UpstreamProber> prober;
  if (upstreams_ && upstreams_->size() > 1) {
    prober.emplace(main_loop, *upstreams_,
                   std::chrono::seconds(config_.server_probe_interval_seconds),
                   std::chrono::seconds(config_.connect_timeout_seconds));
    prober->start();
  }
  std::optional<relay::Timer> save_filters;
  if (replay_filters_ && replay_filters_->persistent()) {
    const auto every = std::chrono::seconds(config_.replay_filter_save_seconds);
    save_filters.emplace(main_loop, [&] {
      saveReplayFilters();
      save_filters->armAfter(every);
    });
    save_filters->armAfter(every);
  }
  main_loop.run();
}

void ServerRuntime::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  // Bottom of the member list first.
  if (control_) control_->shutdown();
  control_.reset();
  if (server_users_) server_users_->stop();
  relay::TcpStats tcp_total;
  relay::UdpStats udp_total;
  if (pool_) {
    // Each worker fills its own slot (the callbacks run concurrently); the sums are made here.
    const size_t n = pool_->size();
    std::vector<relay::TcpStats> tcp(n);
    std::vector<relay::UdpStats> udp(n);
    if (!workers_.empty()) {
      pool_->runOnEachAndWait([&](EventLoop&, size_t i) {
        if (workers_[i]) {
          workers_[i]->closeUdp();
          workers_[i]->publishSample();  // the last traffic, for the registry
          tcp[i].add(workers_[i]->stats());
          udp[i].add(workers_[i]->udpTotals());
        }
        workers_[i].reset();
      });
    }
    pool_->stop();
    for (size_t i = 0; i < n; ++i) {
      tcp_total.add(tcp[i]);
      udp_total.add(udp[i]);
    }
  }
  if (registry_ && hub_) {
    forwardTraffic();
    if (auto status = registry_->flush(); !status.ok()) SR_LOG(Warn, "users: %s", status.message());
  }
  // No more changes from other servers; this server's last traffic is written.
  if (shared_store_) shared_store_->stop();
  // After the workers: the salts of the drained sessions are in.
  if (replay_filters_) saveReplayFilters();
  server_users_.reset();
  plugin_.reset();  // SIGTERM, then SIGKILL: after the sessions it carried
  workers_.clear();
  tcp_fds_.clear();
  udp_fds_.clear();
  pool_.reset();
  hub_.reset();
  exporter_.reset();
  if (config_.check_only || !env_.observer) return;  // nothing ran
  SR_LOG(Info, "stopped: tcp %s", tcp_total.summary());
  // UDP over TCP counts here too, also on a server without -u.
  if (udp_ || udp_total.associations > 0) SR_LOG(Info, "stopped: udp %s", udp_total.summary());
}

}  // namespace shadowrelay::api::app
