// SPDX-License-Identifier: Apache-2.0
#include "relay/config_options.h"

namespace shadowrelay::relay {
namespace {

using K = OptionKind;
constexpr uint8_t kServer = roleBit(Role::Server);
constexpr uint8_t kTunnel = roleBit(Role::Tunnel);
constexpr int kWeek = 7 * 86400;

constexpr OptionSpec kOptions[] = {
    {.name = "config", .kind = K::ConfigFile, .short_flag = "-c", .long_flag = "--config",
     .value_name = "FILE", .field = &Config::config_file,
     .help = "JSON config file (the shadowsocks keys, in brackets below); flags override it"},
    {.name = "server", .short_flag = "-s", .long_flag = "--server", .value_name = "HOST",
     .field = &Config::server_hosts, .help = "the Shadowsocks server (repeatable)",
     .server_help = "listen address (repeatable; none: 0.0.0.0)"},
    {.name = "server_port", .short_flag = "-p", .long_flag = "--server-port", .value_name = "PORT",
     .field = &Config::server_port, .help = "the Shadowsocks server's port",
     .server_help = "listen port"},
    {.name = "password", .short_flag = "-k", .long_flag = "--password", .value_name = "PASSWORD",
     .field = &Config::password, .secret = true,
     .help = "password; the key is derived from it (EVP_BytesToKey); 2022 methods: the base64 "
             "PSK, for a client behind an identity key iPSK:uPSK"},
    {.name = "key", .long_flag = "--key", .value_name = "BASE64", .field = &Config::key,
     .secret = true, .help = "raw key in base64, instead of a password"},
    {.name = "method", .short_flag = "-m", .long_flag = "--method", .value_name = "METHOD",
     .field = &Config::method, .given = &Config::method_given,
     .help = "AEAD method (`shadowrelay ciphers` lists them)"},
    {.name = "users", .roles = kServer, .field = &Config::users,
     .help = "list of {\"name\", \"password\" or \"key\", \"method\", \"port\", \"expire_time\" "
             "(RFC 3339), \"expire_after_first_use\" (seconds, or \"12h\", \"30d\"), "
             "\"data_quota_bytes\", \"data_quota_period\" (none, daily, weekly, monthly), "
             "\"max_devices\", \"bytes_per_second\"}: a dedicated port, "
             "or the shared one (2022: \"password\" above is their identity key)"},
    // --- Several servers for local and tunnel (relay/upstream) ---
    {.name = "servers", .roles = kClientRoles, .field = &Config::servers,
     .help = "list of {\"server\" or \"address\", \"server_port\" or \"port\", \"password\" "
             "or \"key\", \"method\", \"name\" or \"remarks\", \"disabled\"} (shadowsocks-rust's "
             "array): more servers, each with its own port, method and secret; a server is "
             "picked per connection, lowest probed latency first, and a failed connect moves on "
             "to the next"},
    {.name = "server_probe_interval", .long_flag = "--server-probe-interval",
     .value_name = "SECONDS", .roles = kClientRoles,
     .field = &Config::server_probe_interval_seconds, .min = 1, .max = 86400,
     .help = "with several servers: how often each is probed (a TCP connect); a server marked "
             "down is used again once a probe reaches it"},
    {.name = "server_url", .long_flag = "--server-url", .value_name = "SS_URL",
     .roles = kClientRoles, .field = &Config::server_url, .secret = true,
     .help = "an ss:// URL (SIP002, e.g. a user's access_url): the server, its port, the method "
             "and the password, instead of -s -p -m -k"},
    {.name = "local_address", .short_flag = "-b", .long_flag = "--local-address",
     .value_name = "ADDR", .roles = kClientRoles, .field = &Config::local_address,
     .help = "listen address"},
    {.name = "local_port", .short_flag = "-l", .long_flag = "--local-port", .value_name = "PORT",
     .roles = kClientRoles, .field = &Config::local_port, .help = "listen port"},
    {.name = "tunnel_address", .short_flag = "-L", .long_flag = "--tunnel",
     .value_name = "HOST:PORT", .roles = kTunnel, .field = &Config::tunnel_destination,
     .help = "the fixed destination, reached through the server"},
    {.name = "mode", .long_flag = "--mode", .aliases = {{"-u", "tcp_and_udp"}, {"-U", "udp_only"}},
     .value_name = "MODE", .field = &Config::mode,
     .help = "tcp_only, tcp_and_udp (-u) or udp_only (-U)"},
    {.name = "udp_over_tcp", .long_flag = "--udp-over-tcp", .roles = kClientRoles,
     .field = &Config::udp_over_tcp,
     .help = "with -u/-U: carry UDP inside TCP streams (sing-box UoT v2)"},
    {.name = "timeout", .short_flag = "-t", .long_flag = "--timeout", .value_name = "SECONDS",
     .field = &Config::timeout_seconds, .min = 1, .max = kWeek, .help = "idle timeout"},
    {.name = "handshake_timeout", .long_flag = "--handshake-timeout", .value_name = "SECONDS",
     .field = &Config::handshake_timeout_seconds, .min = 1, .max = 3600,
     .help = "time allowed for a client's first request"},
    {.name = "connect_timeout", .long_flag = "--connect-timeout", .value_name = "SECONDS",
     .field = &Config::connect_timeout_seconds, .min = 1, .max = 3600,
     .help = "time allowed to connect upstream"},
    {.name = "drain_timeout", .long_flag = "--drain-timeout", .value_name = "SECONDS",
     .field = &Config::drain_timeout_seconds, .min = 1, .max = 3600,
     .help = "graceful-stop deadline"},
    {.name = "udp_timeout", .long_flag = "--udp-timeout", .value_name = "SECONDS",
     .field = &Config::udp_timeout_seconds, .min = 1, .max = 86400,
     .help = "UDP association idle timeout (30 for port 53)"},
    {.name = "udp_max_associations", .long_flag = "--udp-max-associations", .value_name = "N",
     .field = &Config::udp_max_associations, .min = 1, .max = 1000000,
     .help = "UDP association table bound per worker"},
    // -- Server UDP hardening (issue 15 §1, §4, §5): trial decryption and memory bounds. --
    {.name = "udp_max_trials", .long_flag = "--udp-max-trials", .value_name = "N",
     .roles = kServer, .field = &Config::udp_max_trials, .min = 1, .max = 100000,
     .help = "keys tried at most on one UDP datagram from an unknown source (a port with more "
             "users is walked N at a time, one window per datagram)"},
    {.name = "udp_trial_budget", .long_flag = "--udp-trial-budget", .value_name = "N",
     .roles = kServer, .field = &Config::udp_trial_budget, .min = 1, .max = 10000000,
     .help = "failed UDP trial decryptions per second per worker; beyond it datagrams from "
             "unknown sources are dropped (dropped reason trial_budget)"},
    {.name = "udp_source_trial_budget", .long_flag = "--udp-source-trial-budget",
     .value_name = "N", .roles = kServer, .field = &Config::udp_source_trial_budget, .min = 1,
     .max = 10000000,
     .help = "the same per source address (IPv4, IPv6 /64) and worker"},
    {.name = "udp_user_max_associations", .long_flag = "--udp-user-max-associations",
     .value_name = "N", .roles = kServer, .field = &Config::udp_user_max_associations, .min = 0,
     .max = 1000000,
     .help = "UDP associations one user may hold per port and worker; beyond it new ones are "
             "dropped (reason user_associations)",
     .unset = "a quarter of --udp-max-associations when the port has several users"},
    {.name = "udp_queue_bytes", .long_flag = "--udp-queue-bytes", .value_name = "BYTES",
     .roles = kServer, .field = &Config::udp_queue_bytes, .min = 65536, .max = 1 << 30,
     .help = "bytes of datagrams a worker holds while their names resolve or in UDP-over-TCP "
             "queues; beyond it they are dropped (reason memory)"},
    // -- end of the server UDP hardening block --
    {.name = "default_bytes_per_second", .long_flag = "--default-bytes-per-second",
     .value_name = "BYTES", .roles = kServer, .field = &Config::default_bytes_per_second,
     .min = 0, .max = 2147483647,
     .help = "bandwidth of users whose limits set no bytes_per_second, in bytes per second in "
             "each direction, shared by all of a user's connections: TCP is slowed down, UDP "
             "over it dropped",
     .unset = "unlimited"},
    {.name = "nameserver", .short_flag = "-d", .long_flag = "--nameserver",
     .value_name = "SERVERS", .field = &Config::nameserver,
     .help = "name servers, e.g. 1.1.1.1,127.0.0.1:5353", .unset = "/etc/resolv.conf"},
    {.name = "hosts_file", .long_flag = "--hosts-file", .value_name = "FILE",
     .field = &Config::hosts_file, .help = "hosts file read before DNS",
     .unset = "/etc/hosts"},
    {.name = "acl", .long_flag = "--acl", .value_name = "FILE", .field = &Config::acl,
     .help = "ACL file (shadowsocks-libev's format; reloaded on SIGHUP): local/tunnel bypass or "
             "proxy targets",
     .server_help = "ACL file (shadowsocks-libev's format; reloaded on SIGHUP): its "
                    "[outbound_block_list] targets are refused"},
    {.name = "ipv6_first", .short_flag = "-6", .long_flag = "--ipv6-first",
     .field = &Config::ipv6_first, .help = "prefer IPv6 when resolving"},
    {.name = "dns_cache_size", .long_flag = "--dns-cache-size", .value_name = "N",
     .field = &Config::dns_cache_size, .min = 0, .max = 10000000,
     .help = "DNS cache capacity in entries (0: no cache)"},
    {.name = "dns_min_ttl", .long_flag = "--dns-min-ttl", .value_name = "SECONDS",
     .field = &Config::dns_min_ttl_seconds, .min = 0, .max = kWeek,
     .help = "shortest time an answer is cached, whatever its TTL"},
    {.name = "dns_max_ttl", .long_flag = "--dns-max-ttl", .value_name = "SECONDS",
     .field = &Config::dns_max_ttl_seconds, .min = 0, .max = kWeek,
     .help = "longest time an answer is cached, whatever its TTL"},
    {.name = "dns_negative_ttl", .long_flag = "--dns-negative-ttl", .value_name = "SECONDS",
     .field = &Config::dns_negative_ttl_seconds, .min = 0, .max = kWeek,
     .help = "how long NXDOMAIN and no-address answers are cached (0: not cached)"},
    {.name = "plugin", .long_flag = "--plugin", .value_name = "NAME", .field = &Config::plugin,
     .help = "SIP003 plugin program (in PATH, or a path), e.g. obfs-local or ss-v2ray-plugin: TCP "
             "to the server goes through it, UDP does not",
     .server_help = "SIP003 plugin program (in PATH, or a path), e.g. obfs-server or "
                    "ss-v2ray-plugin: it listens on the public port and passes TCP to us on "
                    "loopback; UDP keeps the public port"},
    {.name = "plugin_opts", .long_flag = "--plugin-opts", .value_name = "OPTS",
     .field = &Config::plugin_opts, .secret = true,
     .help = "the plugin's options (SS_PLUGIN_OPTIONS), e.g. obfs=http;obfs-host=example.com"},
    {.name = "fast_open", .long_flag = "--fast-open", .field = &Config::fast_open,
     .help = "TCP Fast Open"},
    {.name = "no_delay", .long_flag = "--no-delay", .field = &Config::no_delay,
     .help = "TCP_NODELAY on the relayed connections"},
    {.name = "reuse_port", .long_flag = "--reuse-port", .field = &Config::reuse_port,
     .help = "a SO_REUSEPORT listener per worker (off: one listening socket shared by all)"},
    {.name = "workers", .long_flag = "--workers", .value_name = "N", .field = &Config::workers,
     .min = 1, .max = 1024, .help = "worker threads", .unset = "one per CPU"},
    {.name = "allow_private", .long_flag = "--allow-private", .roles = kServer,
     .field = &Config::allow_private, .help = "allow loopback, private and link-local targets"},
    {.name = "forbidden_ip", .long_flag = "--forbidden-ip", .value_name = "NETS",
     .roles = kServer, .field = &Config::forbidden_ip,
     .help = "targets refused even with --allow-private: addresses or networks, comma "
             "separated (Python's \"127.0.0.0/8,::1/128\"; repeatable)"},
    // ---- legacy stream ciphers (issue 16 §1) ----
    {.name = "allow_insecure_ciphers", .long_flag = "--allow-insecure-ciphers",
     .field = &Config::allow_insecure_ciphers,
     .help = "accept the legacy stream methods (aes-*-cfb/ctr, camellia-*-cfb, bf-cfb, "
             "chacha20, chacha20-ietf, salsa20, rc4-md5): no integrity, one user per port; "
             "insecure, for old clients only"},
    {.name = "one_time_auth", .long_flag = "--one-time-auth", .field = &Config::one_time_auth,
     .help = "Python 2.x one-time auth (OTA): refused (deprecated and broken)"},
    // ---- end of legacy stream ciphers ----
    {.name = "crypto_provider", .long_flag = "--crypto-provider", .value_name = "NAME",
     .field = &Config::crypto_provider, .help = "auto, openssl or boringssl"},
    {.name = "pid_file", .short_flag = "-f", .long_flag = "--pid-file", .value_name = "FILE",
     .field = &Config::pid_file,
     .help = "write the process id here once listening; removed at exit"},
    {.name = "user", .short_flag = "-a", .long_flag = "--user", .value_name = "NAME",
     .field = &Config::run_as,
     .help = "run as this user once the ports are bound and the secrets read (needs root; "
             "--state-dir is given to it)"},
    {.name = "state_dir", .long_flag = "--state-dir", .value_name = "DIR", .roles = kServer,
     .field = &Config::state_dir,
     .help = "where a generated key, the API's users and the control token are kept"},
    {.name = "max_users", .long_flag = "--max-users", .value_name = "N", .roles = kServer,
     .field = &Config::max_users, .min = 0, .max = 100000000,
     .help = "CreateUser beyond this many users (configured users included) answers "
             "RESOURCE_EXHAUSTED",
     .unset = "no cap"},
    {.name = "etcd_endpoints", .long_flag = "--etcd-endpoints", .value_name = "URL[,URL...]",
     .roles = kServer, .field = &Config::etcd_endpoints,
     .help = "share users, defaults and identity keys with other servers through etcd "
             "(http:// or https:// client URLs); --state-dir then only caches them",
     .unset = "none: --state-dir is the store"},
    {.name = "etcd_prefix", .long_flag = "--etcd-prefix", .value_name = "P", .roles = kServer,
     .field = &Config::etcd_prefix, .help = "the etcd keys' prefix (starts and ends with /)"},
    {.name = "etcd_ca", .long_flag = "--etcd-ca", .value_name = "FILE", .roles = kServer,
     .field = &Config::etcd_ca, .help = "PEM CA certificate of https etcd endpoints",
     .unset = "the system's CAs"},
    {.name = "etcd_cert", .long_flag = "--etcd-cert", .value_name = "FILE", .roles = kServer,
     .field = &Config::etcd_cert, .help = "client certificate for etcd (with --etcd-key)"},
    {.name = "etcd_key", .long_flag = "--etcd-key", .value_name = "FILE", .roles = kServer,
     .field = &Config::etcd_key, .help = "its private key"},
    {.name = "etcd_user", .long_flag = "--etcd-user", .value_name = "NAME", .roles = kServer,
     .field = &Config::etcd_user, .help = "etcd user (with --etcd-password-file)"},
    {.name = "etcd_password_file", .long_flag = "--etcd-password-file", .value_name = "FILE",
     .roles = kServer, .field = &Config::etcd_password_file,
     .help = "file holding the etcd user's password"},
    {.name = "etcd_sync_interval", .long_flag = "--etcd-sync-interval", .value_name = "SECONDS",
     .roles = kServer, .field = &Config::etcd_sync_interval, .min = 1, .max = 300,
     .help = "how often this server writes its users' traffic and live counts to etcd (data "
             "quotas, max_connections and max_devices hold on the cluster's totals within about "
             "this long)"},
    {.name = "etcd_lease_ttl", .long_flag = "--etcd-lease-ttl", .value_name = "SECONDS",
     .roles = kServer, .field = &Config::etcd_lease_ttl, .min = 2, .max = 600,
     .help = "lease of this server's key in etcd (a server gone this long is folded into the "
             "traffic totals)"},
    {.name = "replica_id", .long_flag = "--replica-id", .value_name = "ID", .roles = kServer,
     .field = &Config::replica_id, .help = "this server's name in etcd's traffic keys",
     .unset = "<hostname>-<random>"},
    {.name = "replay_filter_save_interval", .long_flag = "--replay-filter-save-interval",
     .value_name = "SECONDS", .roles = kServer, .field = &Config::replay_filter_save_seconds,
     .min = 1, .max = 86400,
     .help = "how often the salt replay filters are saved to --state-dir (and at stop)"},
    {.name = "control_listen", .long_flag = "--control-listen", .value_name = "ADDR",
     .roles = kServer, .field = &Config::control_listen, .given = &Config::control_listen_given,
     .help = "gRPC control API: host:port, unix:/path or off"},
    {.name = "control_token_file", .long_flag = "--control-token-file", .value_name = "FILE",
     .roles = kServer, .field = &Config::control_token_file,
     .help = "the control API's bearer token (or $SHADOWRELAY_CONTROL_TOKEN)",
     .unset = "generated in the state directory"},
    {.name = "control_tls_cert", .long_flag = "--control-tls-cert", .value_name = "FILE",
     .roles = kServer, .field = &Config::control_tls_cert,
     .help = "TLS certificate of the control API (with --control-tls-key)"},
    {.name = "control_tls_key", .long_flag = "--control-tls-key", .value_name = "FILE",
     .roles = kServer, .field = &Config::control_tls_key, .help = "its private key"},
    {.name = "control_tls_client_ca", .long_flag = "--control-tls-client-ca",
     .value_name = "FILE", .roles = kServer, .field = &Config::control_tls_client_ca,
     .help = "CA that client certificates must chain to (mutual TLS)"},
    {.name = "control_insecure_plaintext", .long_flag = "--control-insecure-plaintext",
     .roles = kServer, .field = &Config::control_insecure_plaintext,
     .help = "allow the bearer token in plaintext on a non-loopback control address (no TLS); "
             "refused without it"},
    {.name = "public_host", .long_flag = "--public-host", .value_name = "HOST", .roles = kServer,
     .field = &Config::public_host, .help = "host of the users' ss:// URLs",
     .unset = "the listen address, or a guess"},
    {.name = "metrics_listen", .long_flag = "--metrics-listen", .value_name = "ADDR",
     .field = &Config::metrics_listen, .given = &Config::metrics_listen_given,
     .help = "Prometheus /metrics: host:port or off"},
    {.name = "metrics_token_file", .long_flag = "--metrics-token-file", .value_name = "FILE",
     .field = &Config::metrics_token_file,
     .help = "a bearer token that GET /metrics must carry (\"Authorization: Bearer TOKEN\"); "
             "the file must not be readable by group or others",
     .unset = "no token"},
    {.name = "metrics_per_user", .long_flag = "--metrics-per-user", .roles = kServer,
     .field = &Config::metrics_per_user, .help = "a user label on the metrics"},
    // Per-user limits (issue 18).
    {.name = "device_window", .long_flag = "--device-window", .value_name = "SECONDS",
     .roles = kServer, .field = &Config::device_window_seconds, .min = 0, .max = 365 * 86400,
     .help = "how long a client address (IPv4, IPv6 /64) still counts as one of its user's "
             "devices (max_devices) after its last session or association ended"},
    {.name = "show_client_addresses", .long_flag = "--show-client-addresses", .roles = kServer,
     .field = &Config::show_client_addresses,
     .help = "the control API shows users' device addresses; otherwise a keyed hash of each "
             "(stable for the life of the process)"},
    // Pre-authentication bounds and file descriptors (issue 15 §4).
    {.name = "max_preauth_per_source", .long_flag = "--max-preauth-per-source",
     .value_name = "N", .roles = kServer, .field = &Config::max_preauth_per_source, .min = 0,
     .max = 1000000,
     .help = "connections not yet authenticated from one IPv4 address or IPv6 /64 (all workers "
             "together); more are closed at accept, without a byte",
     .unset = "no bound"},
    {.name = "max_preauth_per_worker", .long_flag = "--max-preauth-per-worker",
     .value_name = "N", .roles = kServer, .field = &Config::max_preauth_per_worker, .min = 0,
     .max = 1000000,
     .help = "connections not yet authenticated on one worker; more are closed at accept, "
             "without a byte",
     .unset = "no bound"},
    {.name = "nofile", .short_flag = "-n", .long_flag = "--nofile", .value_name = "N",
     .field = &Config::nofile, .min = 0, .max = 1 << 24,
     .help = "open-file limit (RLIMIT_NOFILE) to set at start, as libev's -n; above the hard "
             "limit it needs CAP_SYS_RESOURCE",
     .unset = "the hard limit"},
    {.name = "verbose", .short_flag = "-v", .long_flag = "--verbose", .field = &Config::verbose,
     .help = "debug logging"},
    {.name = "check_config", .kind = K::Command, .long_flag = "--check-config",
     .field = &Config::check_only,
     .help = "validate the configuration (and the configured users), print every option's value "
             "and where it came from, and exit; writes nothing"},
    {.name = "help", .kind = K::Command, .short_flag = "-h", .long_flag = "--help",
     .field = &Config::help, .help = "print this help and exit"},
};

}  // namespace

absl::Span<const OptionSpec> optionTable() { return kOptions; }

}  // namespace shadowrelay::relay
