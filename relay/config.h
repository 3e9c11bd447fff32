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
  bool operator==(const ConfigUser&) const = default;
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
  bool allow_private = false;
  std::string crypto_provider = "auto";
  std::optional<Endpoint> tunnel_destination;  // -L, "tunnel_address"
  std::string plugin;       // SIP003 plugin program (--plugin, "plugin"); empty: none
  std::string plugin_opts;  // its SS_PLUGIN_OPTIONS (--plugin-opts, "plugin_opts")
  bool verbose = false;
  std::string state_dir;
  int replay_filter_save_seconds = 60;  // --replay-filter-save-interval (with --state-dir)
  std::string config_file;
  bool help = false;
  bool check_only = false;  // --check-config
  bool method_given = false;  // -m or "method" was given (else the default)
  std::vector<ConfigUser> users;  // server: "users"
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

/// Checks cross-field rules (a secret is present, the method exists, a tunnel has -L, the DNS
/// cache's min TTL is at most its max TTL, ...).
absl::Status validateConfig(const Config& config);


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
