// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "relay/net/endpoint.h"
#include "dns/dns_cache.h"

namespace shadowrelay::relay {

enum class Role { Server, Local, Tunnel };
enum class Mode { TcpOnly, TcpAndUdp, UdpOnly };

inline constexpr char kShadowrelayVersion[] = "0.1.0";

/// A user from the config file's "users" list (read-only through the control API).
struct ConfigUser {
  std::string name;
  std::string password;
  std::string key;     // base64, instead of a password
  std::string method;  // empty: the config's method
  uint16_t port = 0;   // a dedicated port; 0: the shared port
  std::string plugin;       // a dedicated port's SIP003 plugin; empty: none
  std::string plugin_opts;  // its options
  std::string expire_time;             // RFC 3339; empty: never
  int64_t expire_after_first_use = 0;  // seconds; 0: never
  uint64_t data_quota_bytes = 0;       // 0: no quota
  std::string data_quota_period;       // "none", "daily", "weekly", "monthly"; empty: none
  uint32_t max_devices = 0;  // "max_devices": UserLimits.max_devices; 0: unlimited
  uint64_t bytes_per_second = 0;  // each direction; 0: --default-bytes-per-second
  bool operator==(const ConfigUser&) const = default;
};

// --- Several servers for local and tunnel (relay/upstream) ---
/// A Shadowsocks server that local or tunnel may use: one of "server" (-s, sharing server_port,
/// method and the secret) or an entry of "servers" (shadowsocks-rust's array, its own of each).
struct ServerEntry {
  std::string host;
  uint16_t port = 0;
  std::string password;
  std::string key;     // base64, instead of a password
  std::string method;
  std::string name;    // logs and the metrics' server label; empty: host:port
  bool operator==(const ServerEntry&) const = default;
};

inline constexpr char kListenOff[] = "off";

/// Where an option's value came from.
enum class OptionSource { Default, File, Flag };

/// A default of dns::DnsCache::Options, in whole seconds.
inline int dnsCacheDefaultSeconds(std::chrono::milliseconds dns::DnsCache::Options::*ttl) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(dns::DnsCache::Options{}.*ttl).count());
}

/// Everything a role needs, after the JSON file (-c) and then the flags were applied. The member
/// initializers are the defaults; the options that set the fields are declared in
/// relay/config_options.cc. Holds secrets: never log it whole (see describe()).
struct Config {
  Role role = Role::Server;
  std::vector<std::string> server_hosts;  // "server": a string or a list
  uint16_t server_port = 8388;
  std::string password;
  std::string key;  // base64
  std::string method = "chacha20-ietf-poly1305";
  std::string server_url;  // local/tunnel: an ss:// URI for server, port, method and password
  int timeout_seconds = 300;
  std::string local_address = "127.0.0.1";
  uint16_t local_port = 1080;
  Mode mode = Mode::TcpOnly;
  std::string nameserver;
  std::string hosts_file;  // --hosts-file, "hosts_file": instead of /etc/hosts
  std::string acl;         // --acl, "acl": an ACL file (relay/acl), reloaded on SIGHUP
  bool ipv6_first = false;
  bool fast_open = false;
  bool no_delay = false;
  bool reuse_port = true;
  int workers = 0;  // 0: one per CPU
  int handshake_timeout_seconds = 60;
  int connect_timeout_seconds = 10;
  int drain_timeout_seconds = 10;
  int udp_timeout_seconds = 300;        // --udp-timeout, "udp_timeout"
  int udp_max_associations = 16384;     // --udp-max-associations, "udp_max_associations"
  bool udp_over_tcp = false;            // local/tunnel: --udp-over-tcp, "udp_over_tcp"
  // Server UDP: bounded trial decryption, per-user association cap, held-datagram memory
  // (issue 15 §1, §4, §5; relay/context/worker_budgets.h).
  int udp_max_trials = 64;               // --udp-max-trials: keys tried per datagram
  int udp_trial_budget = 4096;           // --udp-trial-budget: failed trials/s per worker
  int udp_source_trial_budget = 1024;    // --udp-source-trial-budget: ... per source and worker
  int udp_user_max_associations = 0;     // --udp-user-max-associations; 0: auto
  int udp_queue_bytes = 16 << 20;        // --udp-queue-bytes: held datagrams per worker
  // Per-user bandwidth (issue 18 §3): the rate of users that name none; 0: unlimited.
  int default_bytes_per_second = 0;  // --default-bytes-per-second, "default_bytes_per_second"
  bool allow_private = false;
  std::vector<std::string> forbidden_ip;  // --forbidden-ip, "forbidden_ip": refused targets
  // Legacy stream methods (PROTOCOL.md §4, issue 16): refused unless allowed.
  bool allow_insecure_ciphers = false;  // --allow-insecure-ciphers, "allow_insecure_ciphers"
  bool one_time_auth = false;           // Python 2.x "one_time_auth": refused when true
  std::string crypto_provider = "auto";
  std::optional<Endpoint> tunnel_destination;  // -L, "tunnel_address"
  std::string plugin;       // SIP003 plugin program (--plugin, "plugin"); empty: none
  std::string plugin_opts;  // its SS_PLUGIN_OPTIONS (--plugin-opts, "plugin_opts")
  // Per-user limits (issue 18).
  int device_window_seconds = 600;     // --device-window, "device_window"
  bool show_client_addresses = false;  // --show-client-addresses, "show_client_addresses"
  // Pre-authentication bounds and file descriptors (issue 15 §4).
  int max_preauth_per_source = 1024;  // --max-preauth-per-source; 0: no bound
  int max_preauth_per_worker = 8192;  // --max-preauth-per-worker; 0: no bound
  int nofile = 0;                     // -n/--nofile: RLIMIT_NOFILE; 0: raise to the hard limit
  bool verbose = false;
  std::string state_dir;
  int max_users = 0;  // --max-users: CreateUser beyond it fails; 0: no cap
  // The etcd store shared by several servers (issue 19); etcd_endpoints empty: --state-dir.
  std::vector<std::string> etcd_endpoints;  // --etcd-endpoints URL[,URL...]
  std::string etcd_prefix = "/shadowrelay/";  // --etcd-prefix
  std::string etcd_ca;                        // --etcd-ca: PEM CA of https endpoints
  std::string etcd_cert;                      // --etcd-cert, with --etcd-key
  std::string etcd_key;
  std::string etcd_user;                      // --etcd-user, with --etcd-password-file
  std::string etcd_password_file;
  int etcd_sync_interval = 5;  // --etcd-sync-interval: seconds between traffic writes
  int etcd_lease_ttl = 10;     // --etcd-lease-ttl: seconds
  std::string replica_id;      // --replica-id; empty: <hostname>-<random>
  std::string pid_file;  // -f, "pid_file": written once listening, removed at exit
  std::string run_as;    // -a, "user": the account to become once listening
  int replay_filter_save_seconds = 60;  // --replay-filter-save-interval (with --state-dir)
  std::string config_file;
  bool help = false;
  bool check_only = false;  // --check-config
  bool method_given = false;  // -m or "method" was given (else the default)
  std::vector<ConfigUser> users;  // server: "users"
  // local/tunnel: several servers (relay/upstream), after those of "server".
  std::vector<ServerEntry> servers;        // "servers" (config file)
  int server_probe_interval_seconds = 10;  // --server-probe-interval
  // Server: the gRPC control API.
  std::string control_listen = "127.0.0.1:50051";  // "off" disables
  bool control_listen_given = false;               // explicitly set: failing to start is fatal
  std::string control_token_file;
  std::string control_tls_cert;
  std::string control_tls_key;
  std::string control_tls_client_ca;
  bool control_insecure_plaintext = false;  // a token in plaintext off loopback is allowed
  std::string public_host;  // host of the ss:// access URLs
  // Prometheus /metrics: on by default for the server, off for local and tunnel.
  std::string metrics_listen;
  bool metrics_listen_given = false;
  std::string metrics_token_file;  // GET /metrics needs this bearer token
  bool metrics_per_user = true;
  // The DNS cache (dns::DnsCache::Options), with its defaults.
  int dns_cache_size = static_cast<int>(dns::DnsCache::Options{}.capacity);  // 0: no cache
  int dns_min_ttl_seconds = dnsCacheDefaultSeconds(&dns::DnsCache::Options::min_ttl);
  int dns_max_ttl_seconds = dnsCacheDefaultSeconds(&dns::DnsCache::Options::max_ttl);
  int dns_negative_ttl_seconds = dnsCacheDefaultSeconds(&dns::DnsCache::Options::negative_ttl);
  // Where each option set by the file or a flag came from, by option name (its JSON key).
  std::map<std::string, OptionSource, std::less<>> option_sources;
  /// What reading the file found worth saying but not refusing (Python keys that are ignored).
  std::vector<std::string> warnings;
};

inline constexpr char kDefaultMetricsListen[] = "127.0.0.1:9464";

/// Parses `argv` (after the role word) for `role`: the JSON file named by -c first, then the flags
/// on top, in order ("-x V", "--xx V", "--xx=V"; booleans as usage() says). Options of the other
/// roles are accepted and ignored (one file may serve several roles). Errors name the field or
/// flag, e.g. "config.json: server_port: must be 1..65535". Records where each value came from.
absl::StatusOr<Config> parseConfig(Role role, int argc, const char* const* argv);

/// Fills server, server_port, method and password from server_url (an ss:// URI, relay/ss_uri;
/// nothing without one). INVALID_ARGUMENT naming server_url for a bad URI, or when one of those
/// options was given as well. Call before validateConfig().
absl::Status applyServerUrl(Config& config);

/// --etcd-endpoints as URLs: each flag or list entry split at commas, blanks removed.
std::vector<std::string> etcdEndpointList(const Config& config);

/// Checks cross-field rules (a secret is present, the method exists, a tunnel has -L, the DNS
/// cache's min TTL is at most its max TTL, ...).
absl::Status validateConfig(const Config& config);


/// local/tunnel: every server to use, in order: those of "server" (with server_port, method and
/// the secret) then "servers", whose missing method or secret are the top-level ones.
std::vector<ServerEntry> clientServers(const Config& config);
/// The server's name in logs and metrics: its "name", else "host:port". Never a secret.
std::string serverLabel(const ServerEntry& server);

std::string usage(Role role);
absl::string_view roleName(Role role);
/// A one-line summary without secrets.
std::string describe(const Config& config);
/// Default, unless the file or a flag set the option named `name` (its JSON key).
OptionSource optionSource(const Config& config, absl::string_view name);
/// The --check-config report: every option of the role with its effective value and where it
/// came from, one a line; secrets appear as "(set)", never their value.
std::string checkReport(const Config& config);

}  // namespace shadowrelay::relay
