// SPDX-License-Identifier: Apache-2.0
#include "relay/config.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "dns/dns_cache.h"
#include "gtest/gtest.h"
#include "relay/config_options.h"

namespace shadowrelay::relay {
namespace {

absl::StatusOr<Config> parse(Role role, std::vector<const char*> args) {
  return parseConfig(role, static_cast<int>(args.size()), args.data());
}

absl::StatusOr<Config> parseStrings(Role role, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  return parse(role, argv);
}

std::string writeFile(const std::string& name, const std::string& text) {
  const std::string path = std::string(::testing::TempDir()) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ConfigTest, LibevCompatibleFlags) {
  auto c = parse(Role::Local, {"-s", "1.2.3.4", "-p", "8389", "-k", "pw", "-m", "aes-128-gcm",
                               "-l", "1081", "-b", "127.0.0.2", "-t", "60", "-u", "-6", "-v",
                               "--workers", "3", "--allow-private", "--handshake-timeout=5"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server_hosts, std::vector<std::string>{"1.2.3.4"});
  EXPECT_EQ(c->server_port, 8389);
  EXPECT_EQ(c->password, "pw");
  EXPECT_EQ(c->method, "aes-128-gcm");
  EXPECT_EQ(c->local_port, 1081);
  EXPECT_EQ(c->local_address, "127.0.0.2");
  EXPECT_EQ(c->timeout_seconds, 60);
  EXPECT_EQ(c->mode, Mode::TcpAndUdp);
  EXPECT_TRUE(c->ipv6_first);
  EXPECT_TRUE(c->verbose);
  EXPECT_EQ(c->workers, 3);
  EXPECT_TRUE(c->allow_private);
  EXPECT_EQ(c->handshake_timeout_seconds, 5);
  EXPECT_TRUE(validateConfig(*c).ok());
}

TEST(ConfigTest, JsonFileThenFlagsOverride) {
  const std::string path = writeFile("ok.json", R"({
    "server": ["10.0.0.1", "10.0.0.2"], "server_port": "8400", "password": "from-file",
    "method": "aes-256-gcm", "timeout": 120, "local_address": "0.0.0.0", "local_port": 1090,
    "mode": "udp_only", "nameserver": "1.1.1.1", "ipv6_first": true, "fast_open": false,
    "no_delay": true, "workers": 2, "tunnel_address": "example.com:53"})");
  auto c = parse(Role::Tunnel, {"-c", path.c_str(), "-p", "8500", "-s", "9.9.9.9"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server_hosts, std::vector<std::string>{"9.9.9.9"});
  EXPECT_EQ(c->server_port, 8500);
  EXPECT_EQ(c->password, "from-file");
  EXPECT_EQ(c->method, "aes-256-gcm");
  EXPECT_EQ(c->timeout_seconds, 120);
  EXPECT_EQ(c->local_port, 1090);
  EXPECT_EQ(c->mode, Mode::UdpOnly);
  EXPECT_TRUE(c->no_delay);
  EXPECT_EQ(c->tunnel_destination, (Endpoint{"example.com", 53}));
  EXPECT_TRUE(validateConfig(*c).ok());
}

TEST(ConfigTest, PythonServerConfigWithPortPassword) {
  const std::string path = writeFile("python-server.json", R"({
    "server": "0.0.0.0", "server_port": 8388, "password": "unused",
    "port_password": {"8381": "foobar1", "8382": "foobar2"},
    "timeout": 300, "method": "aes-256-gcm", "fast_open": false, "workers": 1,
    "pid-file": "/var/run/shadowsocks.pid", "log-file": "/var/log/shadowsocks.log",
    "prefer_ipv6": true, "dns_server": ["8.8.8.8", "1.1.1.1"],
    "forbidden_ip": "127.0.0.0/8,::1/128", "one_time_auth": false, "libsodium": "/x.so"})");
  auto c = parse(Role::Server, {"-c", path.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->users.size(), 2u);
  EXPECT_EQ(c->users[0].name, "port-8381");
  EXPECT_EQ(c->users[0].password, "foobar1");
  EXPECT_EQ(c->users[0].port, 8381);
  EXPECT_EQ(c->users[1].port, 8382);
  EXPECT_TRUE(c->users[0].method.empty());  // the file's method
  EXPECT_EQ(c->password, "");               // not served, as in Python
  EXPECT_EQ(c->pid_file, "/var/run/shadowsocks.pid");
  EXPECT_TRUE(c->ipv6_first);
  EXPECT_EQ(c->nameserver, "8.8.8.8,1.1.1.1");
  EXPECT_EQ(c->forbidden_ip, std::vector<std::string>{"127.0.0.0/8,::1/128"});
  EXPECT_EQ(optionSource(*c, "users"), OptionSource::File);
  const std::string warnings = absl::StrJoin(c->warnings, "\n");
  EXPECT_TRUE(absl::StrContains(warnings, "log-file: ignored")) << warnings;
  EXPECT_TRUE(absl::StrContains(warnings, "libsodium: ignored")) << warnings;
  EXPECT_TRUE(absl::StrContains(warnings, "password: not served with port_password")) << warnings;
  EXPECT_TRUE(validateConfig(*c).ok()) << validateConfig(*c);
}

TEST(ConfigTest, PythonTunnelKeysAndRefusedKeys) {
  const std::string tunnel = writeFile("python-tunnel.json", R"({
    "server": "1.2.3.4", "password": "pw", "tunnel_remote": "::1", "tunnel_remote_port": 5353,
    "tunnel_port": 5300})");
  auto t = parse(Role::Tunnel, {"-c", tunnel.c_str()});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->tunnel_destination, (Endpoint{"::1", 5353}));
  EXPECT_EQ(t->local_port, 5300);
  auto l = parse(Role::Local, {"-c", tunnel.c_str()});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE(absl::StrContains(absl::StrJoin(l->warnings, "\n"), "tunnel_port: ignored"));
  const std::string ota = writeFile("python-ota.json", R"({"password": "x", "one_time_auth": true})");
  auto o = parse(Role::Server, {"-c", ota.c_str()});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(absl::StrContains(validateConfig(*o).message(),
                                "one_time_auth: one-time auth (OTA) is deprecated"))
      << validateConfig(*o);
  const std::string manager = writeFile("python-manager.json", R"({"manager_address": "/x"})");
  auto m = parse(Role::Server, {"-c", manager.c_str()});
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::StrContains(m.status().message(), "manager_address: ss-manager")) << m.status();
  const std::string bad = writeFile("python-bad-port.json", R"({"port_password": {"99999": "x"}})");
  auto b = parse(Role::Server, {"-c", bad.c_str()});
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(absl::StrContains(b.status().message(), "port_password.\"99999\"")) << b.status();
  const std::string ssr = writeFile("ssr.json", R"({"password": "x", "protocol": "origin",
    "obfs": "plain", "protocol_param": "", "obfs_param": "", "udp_cache": 64,
    "additional_ports": {}, "forbidden_port": "", "speed_limit_per_user": 0})");
  auto plain = parse(Role::Server, {"-c", ssr.c_str()});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(absl::StrContains(absl::StrJoin(plain->warnings, "\n"), "udp_cache: ignored"));
  const std::string auth = writeFile("ssr-auth.json", R"({"protocol": "auth_aes128_md5"})");
  auto a = parse(Role::Server, {"-c", auth.c_str()});
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(absl::StrContains(a.status().message(),
                                "protocol: ShadowsocksR's \"auth_aes128_md5\" is not Shadowsocks"))
      << a.status();
  const std::string limit = writeFile("ssr-limit.json", R"({"speed_limit_per_con": 100})");
  EXPECT_FALSE(parse(Role::Server, {"-c", limit.c_str()}).ok());
  const std::string empty = writeFile("python-empty-pw.json", R"({"port_password": {"8381": ""}})");
  EXPECT_FALSE(parse(Role::Server, {"-c", empty.c_str()}).ok());
  auto forbidden = parse(Role::Server, {"-k", "x", "--forbidden-ip", "10.0.0.0/40"});
  ASSERT_TRUE(forbidden.ok());
  EXPECT_EQ(validateConfig(*forbidden).message(),
            "config: forbidden_ip: \"10.0.0.0/40\": the prefix length must be 0..32");
}

TEST(ConfigTest, BadConfigNamesTheField) {
  struct Case {
    std::string json;
    std::string want;
  };
  for (const Case& k : std::vector<Case>{
           {R"({"server_port": 70000})", "server_port"},
           {R"({"server_port": "http"})", "server_port"},
           {R"({"password": 5})", "password"},
           {R"({"mode": "both"})", "mode"},
           {R"({"no_such_key": "x"})", "no_such_key: unknown key"},
           {R"({"timeout": -1})", "timeout"},
           {R"({"server": []})", "server"},
           {R"({"server": 1})", "server"},
           {R"({"ipv6_first": "yes"})", "ipv6_first"},
           {R"({"tunnel_address": "nocolon"})", "tunnel_address"},
           {R"({"server": "x",)", "syntax error"},
       }) {
    const std::string path = writeFile("bad.json", k.json);
    auto c = parse(Role::Server, {"-c", path.c_str()});
    ASSERT_FALSE(c.ok()) << k.json;
    EXPECT_NE(std::string(c.status().message()).find(k.want), std::string::npos)
        << c.status() << " for " << k.json;
  }
  auto missing = parse(Role::Server, {"-c", "/nonexistent/shadowrelay.json"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("cannot be read"), std::string::npos);
}

TEST(ConfigTest, ValidationNamesTheField) {
  auto c = parse(Role::Local, {"-s", "1.2.3.4", "-m", "rc4-md5", "-k", "x"});
  ASSERT_TRUE(c.ok());
  auto s = validateConfig(*c);
  EXPECT_NE(std::string(s.message()).find("method"), std::string::npos) << s;
  c = parse(Role::Local, {"-s", "1.2.3.4"});
  s = validateConfig(*c);
  EXPECT_NE(std::string(s.message()).find("password"), std::string::npos) << s;
  c = parse(Role::Tunnel, {"-s", "1.2.3.4", "-k", "x"});
  s = validateConfig(*c);
  EXPECT_NE(std::string(s.message()).find("tunnel_address"), std::string::npos) << s;
  auto bad_flag = parse(Role::Server, {"--bogus"});
  EXPECT_FALSE(bad_flag.ok());
  auto bad_port = parse(Role::Server, {"-p", "70000"});
  ASSERT_FALSE(bad_port.ok());
  EXPECT_NE(std::string(bad_port.status().message()).find("-p"), std::string::npos);
  // Port 0: a listener on any free port (the server logs it), but never the server to reach.
  auto any_port = parse(Role::Server, {"-p", "0", "-k", "x"});
  ASSERT_TRUE(any_port.ok()) << any_port.status();
  EXPECT_TRUE(validateConfig(*any_port).ok());
  auto local_any = parse(Role::Local, {"-s", "1.2.3.4", "-p", "0", "-l", "0", "-k", "x"});
  ASSERT_TRUE(local_any.ok()) << local_any.status();
  s = validateConfig(*local_any);
  EXPECT_EQ(s.message(), "config: server_port: the server to reach needs a port (1..65535)");
  EXPECT_FALSE(parse(Role::Server, {"-p"}).ok());
}

TEST(ConfigTest, PluginFlagsAndKeys) {
  const std::string file = writeFile(
      "plugin.json", R"({"plugin": "obfs-server", "plugin_opts": "obfs=tls;failover=1.2.3.4:443"})");
  auto c = parse(Role::Server, {"-c", file.c_str(), "-k", "x"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->plugin, "obfs-server");
  EXPECT_EQ(c->plugin_opts, "obfs=tls;failover=1.2.3.4:443");
  EXPECT_TRUE(validateConfig(*c).ok());
  // The options may carry a plugin's secret (kcptun's key): the report hides them.
  const std::string report = checkReport(*c);
  EXPECT_TRUE(absl::StrContains(report, "obfs-server")) << report;
  EXPECT_FALSE(absl::StrContains(report, "obfs=tls")) << report;
  c = parse(Role::Local, {"-s", "1.2.3.4", "-p", "443", "-k", "x", "--plugin", "ss-v2ray-plugin",
                          "--plugin-opts", "tls;host=example.com"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->plugin, "ss-v2ray-plugin");
  EXPECT_EQ(c->plugin_opts, "tls;host=example.com");
  EXPECT_TRUE(validateConfig(*c).ok());
}

TEST(ConfigTest, PidFileUserAndHostsFileFlagsAndKeys) {
  auto c = parse(Role::Server, {"-k", "x", "-f", "/run/sr.pid", "-a", "root", "--hosts-file",
                                "/etc/hosts"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pid_file, "/run/sr.pid");
  EXPECT_EQ(c->run_as, "root");
  EXPECT_EQ(c->hosts_file, "/etc/hosts");
  EXPECT_TRUE(validateConfig(*c).ok());
  auto unknown = parse(Role::Local, {"-s", "1.2.3.4", "-k", "x", "--user", "no-such-user-sr"});
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(validateConfig(*unknown).message(), "config: user: no user named no-such-user-sr");
  auto dir = parse(Role::Server, {"-k", "x", "--pid-file", "/run/"});
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(validateConfig(*dir).message(), "config: pid_file: names a directory, not a file");
}

TEST(ConfigTest, PluginRulesNameTheField) {
  auto c = parse(Role::Local, {"-s", "1.2.3.4", "-p", "1", "-k", "x", "--plugin-opts", "obfs=http"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(validateConfig(*c).message(), "config: plugin_opts: needs a plugin");
  c = parse(Role::Server, {"-k", "x", "--plugin", "obfs-server", "-U"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(absl::StartsWith(validateConfig(*c).message(), "config: plugin: "))
      << validateConfig(*c);
  c = parse(Role::Server, {"-k", "x", "--plugin", "obfs-server", "-s", "127.0.0.1", "-s", "::1"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(absl::StartsWith(validateConfig(*c).message(), "config: server: "))
      << validateConfig(*c);
  // UDP beside the plugin is fine: it keeps the real port.
  c = parse(Role::Server, {"-k", "x", "--plugin", "obfs-server", "-u"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(validateConfig(*c).ok());
}

// Legacy stream methods (issue 16 §1): refused without --allow-insecure-ciphers, naming it; one
// user per port; one-time auth refused.
TEST(ConfigTest, StreamMethodsNeedTheFlagAndServeOneUserPerPort) {
  for (Role role : {Role::Server, Role::Local, Role::Tunnel}) {
    auto c = parse(role, {"-s", "1.2.3.4", "-p", "1", "-k", "x", "-m", "chacha20", "-L",
                          "1.2.3.4:80"});
    ASSERT_TRUE(c.ok()) << c.status();
    const absl::Status s = validateConfig(*c);
    EXPECT_TRUE(absl::StartsWith(s.message(), "config: method: chacha20 is a legacy stream"))
        << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "--allow-insecure-ciphers")) << s;
    c = parse(role, {"-s", "1.2.3.4", "-p", "1", "-k", "x", "-m", "chacha20", "-L", "1.2.3.4:80",
                     "--allow-insecure-ciphers"});
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(validateConfig(*c).ok()) << validateConfig(*c);
  }
  // The JSON key; a user of the file with a stream method on a port of its own is fine, one on
  // the shared port beside the -k user is not; without the key the user's method is refused.
  auto c = parse(Role::Server, {"-c", writeFile("stream.json", R"({
    "server_port": 8388, "password": "x", "method": "aes-256-gcm",
    "allow_insecure_ciphers": true,
    "users": [{"name": "old", "password": "y", "method": "rc4-md5", "port": 9000}]})")
                                           .c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->allow_insecure_ciphers);
  EXPECT_TRUE(validateConfig(*c).ok()) << validateConfig(*c);
  c->users[0].port = 8388;
  EXPECT_TRUE(absl::StartsWith(validateConfig(*c).message(), "config: users[0].method: rc4-md5 "
                                                             "has no authentication"))
      << validateConfig(*c);
  c->users[0].port = 9000;
  c->allow_insecure_ciphers = false;
  EXPECT_TRUE(absl::StartsWith(validateConfig(*c).message(), "config: users[0].method: rc4-md5 "
                                                             "is a legacy stream method"))
      << validateConfig(*c);
  // OTA: the key and the -auth suffix.
  c = parse(Role::Server, {"-k", "x", "--one-time-auth"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(absl::StartsWith(validateConfig(*c).message(),
                               "config: one_time_auth: one-time auth (OTA) is deprecated"))
      << validateConfig(*c);
  c = parse(Role::Server, {"-k", "x", "-m", "aes-128-cfb-auth", "--allow-insecure-ciphers"});
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(absl::StrContains(validateConfig(*c).message(), "one-time auth (OTA)"))
      << validateConfig(*c);
}

TEST(ConfigTest, Shadowsocks2022TakesOneBase64PskOverTcpAndUdp) {
  const char* psk16 = "AAECAwQFBgcICQoLDA0ODw==";
  for (Role role : {Role::Server, Role::Local, Role::Tunnel}) {
    for (const char* mode : {"", "-u", "-U"}) {
      std::vector<const char*> args = {"-s", "1.2.3.4", "-p", "8388", "-L", "5.6.7.8:53",
                                       "-m", "2022-blake3-aes-128-gcm", "-k", psk16};
      if (*mode != '\0') args.push_back(mode);
      auto c = parse(role, std::move(args));
      ASSERT_TRUE(c.ok()) << c.status();
      if (role == Role::Local && std::string(mode) == "-U") continue;  // refused at start-up
      EXPECT_TRUE(validateConfig(*c).ok()) << mode << ": " << validateConfig(*c);
    }
  }
  // UDP over TCP through a 2022 stream, as over a 2017 one.
  auto uot = parse(Role::Tunnel, {"-s", "1.2.3.4", "-p", "8388", "-L", "5.6.7.8:53", "-m",
                                  "2022-blake3-chacha20-poly1305", "-k",
                                  "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "-U",
                                  "--udp-over-tcp"});
  ASSERT_TRUE(uot.ok()) << uot.status();
  EXPECT_TRUE(validateConfig(*uot).ok()) << validateConfig(*uot);
  auto expectError = [](std::vector<const char*> args, const std::string& message) {
    auto c = parse(Role::Server, std::move(args));
    ASSERT_TRUE(c.ok()) << c.status();
    const absl::Status s = validateConfig(*c);
    EXPECT_NE(std::string(s.message()).find(message), std::string::npos) << s;
  };
  expectError({"-m", "2022-blake3-aes-256-gcm", "-k", psk16},
              "config: password: PSK: decodes to 16 bytes but 2022-blake3-aes-256-gcm needs 32");
  expectError({"-m", "2022-blake3-aes-128-gcm", "-k", "no base64!"},
              "config: password: PSK: not valid base64");
  expectError({"-m", "2022-blake3-aes-128-gcm", "--key", "AAEC"},
              "config: key: PSK: decodes to 3 bytes");
  expectError({"-m", "2022-blake3-aes-128-gcm"}, "config: password: missing");
}

TEST(ConfigTest, Shadowsocks2022ClientsTakeIdentityKeyLists) {
  const std::string list = "AAECAwQFBgcICQoLDA0ODw==:EBESExQVFhcYGRobHB0eHw==";  // iPSK:uPSK
  for (Role role : {Role::Local, Role::Tunnel}) {
    auto c = parse(role, {"-s", "1.2.3.4", "-L", "5.6.7.8:53", "-m", "2022-blake3-aes-128-gcm",
                          "-k", list.c_str()});
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(validateConfig(*c).ok()) << validateConfig(*c);
  }
  auto expectError = [](Role role, std::vector<const char*> args, const std::string& message) {
    args.insert(args.begin(), {"-s", "1.2.3.4"});
    auto c = parse(role, std::move(args));
    ASSERT_TRUE(c.ok()) << c.status();
    const absl::Status s = validateConfig(*c);
    EXPECT_NE(std::string(s.message()).find(message), std::string::npos) << s;
  };
  // The server's key is one PSK: with users it is their identity key.
  expectError(Role::Server, {"-m", "2022-blake3-aes-128-gcm", "-k", list.c_str()},
              "config: password: PSK: a list of keys (iPSK:...:uPSK) where one key is expected");
  expectError(Role::Local,
              {"-m", "2022-blake3-chacha20-poly1305", "-k",
               "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk"
               "aGxwdHh8="},
              "config: password: PSK: identity headers (iPSK:...:uPSK) exist only for the 2022 "
              "AES methods");
  expectError(Role::Local,
              {"-m", "2022-blake3-aes-128-gcm", "--key", "c2hvcnQ=:EBESExQVFhcYGRobHB0eHw=="},
              "config: key: key 1 of 2 (iPSK): PSK: decodes to 5 bytes");
}

TEST(ConfigTest, Shadowsocks2022UsersInTheFileAsShadowsocksRustReadsThem) {
  auto withUsers = [](const std::string& method, const std::string& users) {
    const char* ipsk = absl::StrContains(method, "chacha")
                           ? "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  // 32 bytes
                           : "AAECAwQFBgcICQoLDA0ODw==";                     // 16 bytes
    const std::string path =
        writeFile("users2022.json", absl::StrCat(R"({"method": ")", method, R"(", "password": ")",
                                                 ipsk, R"(", "users": )", users, "}"));
    auto c = parse(Role::Server, {"-c", path.c_str()});
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? validateConfig(*c) : c.status();
  };
  EXPECT_TRUE(withUsers("2022-blake3-aes-128-gcm",
                        R"([{"name": "alice", "password": "EBESExQVFhcYGRobHB0eHw=="},
                            {"name": "bob", "key": "ICEiIyQlJicoKSorLC0uLw=="},
                            {"name": "carol", "password": "2017 user", "method": "aes-128-gcm",
                             "port": 9001}])")
                  .ok());
  const std::pair<std::string, std::string> refused[] = {
      {R"([{"name": "a", "password": "EBESExQVFhcYGRobHB0eHw=="},
           {"name": "b", "password": "c2hvcnQ="}])",
       "config: users[1].password: PSK: decodes to 5 bytes but 2022-blake3-aes-128-gcm needs 16 "
       "(24 base64 characters"},
      {R"([{"name": "a", "key": "not base64!"}])", "config: users[0].key: PSK: not valid base64"},
      {R"([{"name": "a", "password": "EBESExQVFhcYGRobHB0eHw==", "port": 9001}])",
       "config: users[0].port: 2022 users from the configuration share the server port"},
      {R"([{"name": "a", "password": "EBESExQVFhcYGRobHB0eHw==",
            "method": "2022-blake3-aes-256-gcm"}])",
       "config: users[0].method: 2022 users share the server port and its method"},
  };
  for (const auto& [users, message] : refused) {
    const absl::Status s = withUsers("2022-blake3-aes-128-gcm", users);
    EXPECT_NE(std::string(s.message()).find(message), std::string::npos) << s;
  }
  const absl::Status chacha =
      withUsers("2022-blake3-chacha20-poly1305",
                R"([{"name": "a", "password": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}])");
  EXPECT_NE(std::string(chacha.message())
                .find("config: users[0].method: 2022-blake3-chacha20-poly1305 has no identity "
                      "headers (SIP023): a ChaCha 2022 port serves one user"),
            std::string::npos)
      << chacha;
  // UDP with 2022 users: identity headers over UDP too (relay/udp/udp2022_server.h).
  const std::string udp_path = writeFile(
      "users2022-udp.json",
      R"({"method": "2022-blake3-aes-128-gcm", "password": "AAECAwQFBgcICQoLDA0ODw==",
          "mode": "tcp_and_udp", "users": [{"name": "a", "password": "EBESExQVFhcYGRobHB0eHw=="}]})");
  auto udp = parse(Role::Server, {"-c", udp_path.c_str()});
  ASSERT_TRUE(udp.ok()) << udp.status();
  EXPECT_TRUE(validateConfig(*udp).ok()) << validateConfig(*udp);
  // A 2022 user beside a 2017 server method: the identity key would be missing.
  const absl::Status mixed = withUsers(
      "aes-128-gcm",
      R"([{"name": "a", "password": "EBESExQVFhcYGRobHB0eHw==", "method": "2022-blake3-aes-128-gcm"}])");
  EXPECT_NE(std::string(mixed.message()).find("users[0].method: 2022 users share the server port"),
            std::string::npos)
      << mixed;
}

TEST(ConfigTest, ServerUrlGivesServerPortMethodAndPassword) {
  const std::string url =
      "ss://2022-blake3-aes-128-gcm:AAECAwQFBgcICQoLDA0ODw%3D%3D%3AEBESExQVFhcYGRobHB0eHw%3D%3D"
      "@127.0.0.1:8400#alice";
  auto c = parseStrings(Role::Local, {"--server-url", url, "-l", "0"});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(applyServerUrl(*c).ok());
  EXPECT_EQ(c->server_hosts, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(c->server_port, 8400);
  EXPECT_EQ(c->method, "2022-blake3-aes-128-gcm");
  EXPECT_EQ(c->password, "AAECAwQFBgcICQoLDA0ODw==:EBESExQVFhcYGRobHB0eHw==");
  EXPECT_TRUE(validateConfig(*c).ok()) << validateConfig(*c);
  const std::string report = checkReport(*c);
  EXPECT_FALSE(absl::StrContains(report, "AAECAwQFBgcICQoLDA0ODw")) << report;
  EXPECT_TRUE(absl::StrContains(report, "server_url")) << report;

  auto both = parseStrings(Role::Tunnel, {"--server-url", url, "-k", "x", "-L", "h:1"});
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(applyServerUrl(*both).message(),
            "config: server_url: gives the server, its port, the method and the password: do "
            "not also give password");
  // A SIP003 plugin in the URL becomes plugin and plugin_opts.
  const std::string with_plugin =
      "ss://YWVzLTEyOC1nY206dGVzdA@h:1/?plugin=obfs-local%3Bobfs%3Dhttp%3Bobfs-host%3Dx.test";
  auto p = parseStrings(Role::Local, {"--server-url", with_plugin});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(applyServerUrl(*p).ok());
  EXPECT_EQ(p->plugin, "obfs-local");
  EXPECT_EQ(p->plugin_opts, "obfs=http;obfs-host=x.test");
  auto twice = parseStrings(Role::Local, {"--server-url", with_plugin, "--plugin", "other"});
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(applyServerUrl(*twice).message(),
            "config: server_url: carries a plugin: do not also give plugin");
  auto bad = parseStrings(Role::Local, {"--server-url", "ss://YWVzLTEyOC1nY206dGVzdA@h"});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(applyServerUrl(*bad).message(), "config: server_url: ss:// URI: port: missing");
  Config none = *parse(Role::Local, {"-s", "h", "-k", "x"});
  EXPECT_TRUE(applyServerUrl(none).ok());
  EXPECT_EQ(none.password, "x");
}

TEST(ConfigTest, EndpointForms) {
  EXPECT_EQ(*Endpoint::parse("example.com:80"), (Endpoint{"example.com", 80}));
  EXPECT_EQ(*Endpoint::parse("[::1]:53"), (Endpoint{"::1", 53}));
  EXPECT_FALSE(Endpoint::parse("::1:53").ok());
  EXPECT_FALSE(Endpoint::parse("host:").ok());
  EXPECT_FALSE(Endpoint::parse(":80").ok());
  EXPECT_FALSE(Endpoint::parse("host:0").ok());
  EXPECT_EQ(Endpoint::parse("host:0", Endpoint::Port::AnyOrZero)->port, 0);
}

TEST(ConfigTest, DescribeHasNoSecrets) {
  auto c = parse(Role::Local, {"-s", "1.2.3.4", "-k", "hunter2-secret"});
  EXPECT_EQ(describe(*c).find("hunter2"), std::string::npos);
}

// ---- The option table (relay/config_options.cc) drives the tests below: a new option is
// covered without a new test.

Role firstRole(const OptionSpec& o) {
  for (Role role : {Role::Server, Role::Local, Role::Tunnel}) {
    if (appliesTo(o, role)) return role;
  }
  return Role::Server;
}

bool sameValue(const OptionSpec& o, const Config& a, const Config& b) {
  return std::visit([&](auto member) { return a.*member == b.*member; }, o.field);
}

std::vector<std::string> flagsOf(const OptionSpec& o) {
  std::vector<std::string> flags;
  if (o.short_flag != nullptr) flags.push_back(o.short_flag);
  if (o.long_flag != nullptr) flags.push_back(o.long_flag);
  for (const FlagAlias& alias : o.aliases) {
    if (alias.flag != nullptr) flags.push_back(alias.flag);
  }
  return flags;
}

/// A value unlike the role's default, as JSON and as a flag's text.
struct Sample {
  std::string json;
  std::string text;
};

struct SampleFor {
  const OptionSpec& o;
  const Config& defaults;
  Sample operator()(std::string Config::*) const { return {"\"sample-text\"", "sample-text"}; }
  Sample operator()(uint16_t Config::*m) const {
    const std::string port = defaults.*m == 4321 ? "4322" : "4321";
    return {port, port};
  }
  Sample operator()(int Config::*m) const {
    const std::string n = absl::StrCat(defaults.*m == o.max ? o.min : o.max);
    return {n, n};
  }
  Sample operator()(bool Config::*m) const {
    return defaults.*m ? Sample{"false", "false"} : Sample{"true", "true"};
  }
  Sample operator()(Mode Config::*) const { return {"\"udp_only\"", "udp_only"}; }
  Sample operator()(std::optional<Endpoint> Config::*) const {
    return {"\"example.com:53\"", "example.com:53"};
  }
  Sample operator()(std::vector<std::string> Config::*) const {
    return {R"(["h1.test", "h2.test"])", "h1.test"};
  }
  Sample operator()(std::vector<ConfigUser> Config::*) const {
    return {R"([{"name": "u1", "password": "p1", "port": 9001}])", ""};
  }
  Sample operator()(std::vector<ServerEntry> Config::*) const {
    return {R"([{"server": "s1.test", "server_port": 9001, "password": "p1"}])", ""};
  }
};

Sample sampleFor(const OptionSpec& o, const Config& defaults) {
  return std::visit(SampleFor{o, defaults}, o.field);
}

TEST(OptionTableTest, EveryEntryIsComplete) {
  std::set<std::string> names;
  std::set<std::string> flags;
  for (const OptionSpec& o : optionTable()) {
    SCOPED_TRACE(o.name);
    EXPECT_TRUE(names.insert(o.name).second) << "the name is used twice";
    EXPECT_NE(std::string(o.help), "");
    EXPECT_NE(o.roles, 0);
    const bool boolean = std::holds_alternative<bool Config::*>(o.field);
    const bool users = std::holds_alternative<std::vector<ConfigUser> Config::*>(o.field) ||
                       std::holds_alternative<std::vector<ServerEntry> Config::*>(o.field);
    EXPECT_EQ(flagsOf(o).empty(), users) << "every option but the users and servers lists has a flag";
    EXPECT_EQ(o.value_name == nullptr, boolean || users) << "a value name iff a flag takes one";
    if (std::holds_alternative<int Config::*>(o.field)) {
      EXPECT_LT(o.min, o.max);
    }
    if (o.secret) {
      EXPECT_TRUE(std::holds_alternative<std::string Config::*>(o.field));
    }
    if (o.kind != OptionKind::Setting) {
      EXPECT_EQ(o.roles, kAllRoles);
    }
    for (const std::string& flag : flagsOf(o)) {
      EXPECT_TRUE(flags.insert(flag).second) << flag << " is used twice";
    }
    if (boolean && o.long_flag != nullptr) {
      EXPECT_TRUE(flags.insert(absl::StrCat("--no-", o.long_flag + 2)).second);
    }
  }
}

TEST(OptionTableTest, EveryJsonKeyParsesFromAFile) {
  for (const OptionSpec& o : optionTable()) {
    if (o.kind != OptionKind::Setting) continue;
    SCOPED_TRACE(o.name);
    const Role role = firstRole(o);
    const Config defaults = *parse(role, {});
    const Sample sample = sampleFor(o, defaults);
    const std::string path =
        writeFile("one-key.json", absl::StrCat("{\"", o.name, "\": ", sample.json, "}"));
    auto c = parse(role, {"-c", path.c_str()});
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_FALSE(sameValue(o, *c, defaults)) << sample.json << " left the default";
    EXPECT_EQ(optionSource(*c, o.name), OptionSource::File);
    EXPECT_EQ(optionSource(defaults, o.name), OptionSource::Default);
  }
}

TEST(OptionTableTest, EveryFlagParsesFromArgv) {
  const std::string empty_file = writeFile("empty.json", "{}");
  for (const OptionSpec& o : optionTable()) {
    const Role role = firstRole(o);
    const Config defaults = *parse(role, {});
    Sample sample = sampleFor(o, defaults);
    if (o.kind == OptionKind::ConfigFile) sample.text = empty_file;
    std::vector<std::vector<std::string>> forms;
    for (const char* flag : {o.short_flag, o.long_flag}) {
      if (flag == nullptr) continue;
      forms.push_back({flag, sample.text});
      if (absl::StartsWith(flag, "--")) forms.push_back({absl::StrCat(flag, "=", sample.text)});
      if (sample.text == "true") forms.push_back({flag});
    }
    if (sample.text == "false" && o.long_flag != nullptr) {
      forms.push_back({absl::StrCat("--no-", o.long_flag + 2)});
    }
    for (const FlagAlias& alias : o.aliases) {
      if (alias.flag != nullptr) forms.push_back({alias.flag});
    }
    for (const std::vector<std::string>& argv : forms) {
      SCOPED_TRACE(absl::StrJoin(argv, " "));
      auto c = parseStrings(role, argv);
      ASSERT_TRUE(c.ok()) << c.status();
      EXPECT_FALSE(sameValue(o, *c, defaults)) << "left the default";
      EXPECT_EQ(optionSource(*c, o.name), OptionSource::Flag);
    }
  }
}

TEST(OptionTableTest, BooleanFlagForms) {
  struct Case {
    std::vector<std::string> argv;
    bool want;
  };
  for (const OptionSpec& o : optionTable()) {
    if (o.kind != OptionKind::Setting || !std::holds_alternative<bool Config::*>(o.field)) {
      continue;
    }
    const std::string flag = o.long_flag;
    const std::string no = absl::StrCat("--no-", flag.substr(2));
    const bool Config::*field = std::get<bool Config::*>(o.field);
    for (const Case& k : std::vector<Case>{
             {{flag}, true},
             {{flag + "=true"}, true},
             {{flag, "true"}, true},
             {{flag + "=false"}, false},
             {{flag, "false"}, false},
             {{no}, false},
             {{no, flag}, true},
             {{flag, no}, false},
             {{flag, "-t", "5"}, true},
         }) {
      SCOPED_TRACE(absl::StrJoin(k.argv, " "));
      auto c = parseStrings(firstRole(o), k.argv);
      ASSERT_TRUE(c.ok()) << c.status();
      EXPECT_EQ((*c).*field, k.want);
    }
    auto bad = parseStrings(firstRole(o), {flag + "=yes"});
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().message(),
              absl::StrCat("option ", flag, ": \"yes\" is not true or false"));
    bad = parseStrings(firstRole(o), {no + "=true"});
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().message(), absl::StrCat("option ", no, " takes no value"));
  }
}

TEST(OptionTableTest, ReusePortCanBeTurnedOff) {
  EXPECT_TRUE(parse(Role::Server, {})->reuse_port);
  EXPECT_FALSE(parse(Role::Server, {"--no-reuse-port"})->reuse_port);
  EXPECT_FALSE(parse(Role::Server, {"--reuse-port=false"})->reuse_port);
  const std::string path = writeFile("reuse.json", R"({"reuse_port": false})");
  EXPECT_FALSE(parse(Role::Server, {"-c", path.c_str()})->reuse_port);
  EXPECT_TRUE(parse(Role::Server, {"-c", path.c_str(), "--reuse-port"})->reuse_port);
  // The short booleans turn on; -6 is --ipv6-first.
  EXPECT_TRUE(parse(Role::Local, {"-6"})->ipv6_first);
  EXPECT_FALSE(parse(Role::Local, {"-6", "--no-ipv6-first"})->ipv6_first);
  // Unchanged: --metrics-per-user=false and --metrics-per-user false.
  EXPECT_FALSE(parse(Role::Server, {"--metrics-per-user=false"})->metrics_per_user);
  EXPECT_FALSE(parse(Role::Server, {"--metrics-per-user", "false"})->metrics_per_user);
}

// The options column of a --help line ("  -u, -U, --mode MODE   text"): its flags.
std::vector<std::string> helpLineFlags(absl::string_view line) {
  std::vector<std::string> flags;
  if (!absl::StartsWith(line, "  -")) return flags;
  const absl::string_view column = line.substr(2, line.find("  ", 2) - 2);
  for (absl::string_view token : absl::StrSplit(column, absl::ByAnyChar(", "), absl::SkipEmpty())) {
    if (absl::StartsWith(token, "-")) flags.emplace_back(token);
  }
  return flags;
}

int countOf(absl::string_view text, absl::string_view what) {
  int n = 0;
  for (size_t at = text.find(what); at != text.npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(OptionTableTest, HelpListsEachOptionOnceForItsRoles) {
  for (Role role : {Role::Server, Role::Local, Role::Tunnel}) {
    const std::string help = usage(role);
    SCOPED_TRACE(help);
    std::vector<std::vector<std::string>> lines;
    for (absl::string_view line : absl::StrSplit(help, '\n')) {
      EXPECT_LE(line.size(), 100u) << line;
      lines.push_back(helpLineFlags(line));
    }
    for (const OptionSpec& o : optionTable()) {
      const int want = appliesTo(o, role) ? 1 : 0;
      for (const std::string& flag : flagsOf(o)) {
        int n = 0;
        for (const auto& flags : lines) n += std::count(flags.begin(), flags.end(), flag);
        EXPECT_EQ(n, want) << flag << " for " << roleName(role);
      }
      if (o.kind == OptionKind::Setting) {
        EXPECT_EQ(countOf(help, absl::StrCat("[", o.name, "]")), want) << o.name;
      }
    }
    EXPECT_TRUE(absl::StrContains(help, "--no-")) << "the boolean rule is not explained";
  }
  EXPECT_TRUE(absl::StrContains(usage(Role::Server), "(default: 8388) [server_port]"));
  EXPECT_TRUE(absl::StrContains(usage(Role::Server), "(default: true) [reuse_port]"));
}

TEST(CheckReportTest, EveryOptionWithItsSourceAndNoSecret) {
  const std::string path = writeFile("report.json", R"({
    "server_port": 8400, "method": "aes-256-gcm", "local_port": 1090,
    "users": [{"name": "alice", "password": "alice-secret-pw", "port": 9001},
              {"name": "bob", "key": "Ym9iLXNlY3JldC1rZXktYmFzZTY0LTMyLWJ5dGVzISE="}]})");
  auto c = parse(Role::Server, {"-c", path.c_str(), "-k", "hunter2-secret", "-t", "60"});
  ASSERT_TRUE(c.ok()) << c.status();
  const std::string report = checkReport(*c);
  SCOPED_TRACE(report);
  for (const char* secret : {"hunter2", "alice-secret", "Ym9i"}) {
    EXPECT_FALSE(absl::StrContains(report, secret)) << secret;
  }
  for (const OptionSpec& o : optionTable()) {
    if (o.kind == OptionKind::Command) continue;
    int lines = 0;
    for (absl::string_view line : absl::StrSplit(report, '\n')) {
      lines += absl::StartsWith(line, absl::StrCat("  ", o.name, " ")) ? 1 : 0;
    }
    EXPECT_EQ(lines, appliesTo(o, Role::Server) ? 1 : 0) << o.name;
  }
  EXPECT_TRUE(absl::StrContains(report, "  password  "));
  EXPECT_TRUE(absl::StrContains(report, "(set)  (flag)"));
  EXPECT_TRUE(absl::StrContains(report, "  key  ") || absl::StrContains(report, "(not set)"));
  EXPECT_TRUE(absl::StrContains(report, "8400  (config file)"));
  EXPECT_TRUE(absl::StrContains(report, "60  (flag)"));
  EXPECT_TRUE(absl::StrContains(report, "16384  (default)"));
  EXPECT_TRUE(absl::StrContains(report, "alice (port 9001), bob  (config file)"));
  EXPECT_TRUE(absl::StrContains(report, "ignored by server: local_port")) << "local only";
}

TEST(ConfigTest, DnsCacheKnobs) {
  const Config defaults = *parse(Role::Server, {});
  const dns::DnsCache::Options cache;
  EXPECT_EQ(defaults.dns_cache_size, static_cast<int>(cache.capacity));
  EXPECT_EQ(std::chrono::seconds(defaults.dns_min_ttl_seconds), cache.min_ttl);
  EXPECT_EQ(std::chrono::seconds(defaults.dns_max_ttl_seconds), cache.max_ttl);
  EXPECT_EQ(std::chrono::seconds(defaults.dns_negative_ttl_seconds), cache.negative_ttl);
  EXPECT_TRUE(validateConfig(defaults).ok());

  const std::string path = writeFile("dns.json", R"({"dns_cache_size": 0, "dns_min_ttl": 0,
    "dns_max_ttl": "3600", "dns_negative_ttl": 0})");
  auto c = parse(Role::Server, {"-c", path.c_str(), "--dns-negative-ttl=30"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dns_cache_size, 0);
  EXPECT_EQ(c->dns_min_ttl_seconds, 0);
  EXPECT_EQ(c->dns_max_ttl_seconds, 3600);
  EXPECT_EQ(c->dns_negative_ttl_seconds, 30);
  EXPECT_TRUE(validateConfig(*c).ok());

  c = parse(Role::Server, {"--dns-min-ttl", "60", "--dns-max-ttl", "60"});
  EXPECT_TRUE(validateConfig(*c).ok()) << "min == max is a fixed TTL";
  c = parse(Role::Server, {"--dns-min-ttl", "600", "--dns-max-ttl", "60"});
  EXPECT_EQ(validateConfig(*c).message(), "config: dns_min_ttl: 600 is above dns_max_ttl (60)");

  auto bad = parse(Role::Server, {"--dns-cache-size=-1"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "option --dns-cache-size: \"-1\" is not a number in 0..10000000");
  const std::string bad_path = writeFile("dns-bad.json", R"({"dns_max_ttl": "soon"})");
  bad = parse(Role::Server, {"-c", bad_path.c_str()});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            absl::StrCat(bad_path, ": dns_max_ttl: \"soon\" is not a number in 0..604800"));
}

// Issue 15 §4: the pre-authentication bounds and the open-file limit.
TEST(ConfigTest, PreauthBoundsAndNofile) {
  const Config defaults = *parse(Role::Server, {});
  EXPECT_EQ(defaults.max_preauth_per_source, 1024);
  EXPECT_EQ(defaults.max_preauth_per_worker, 8192);
  EXPECT_EQ(defaults.nofile, 0);

  const std::string path = writeFile("preauth.json", R"({"max_preauth_per_source": 16,
    "max_preauth_per_worker": "0", "nofile": 4096})");
  auto c = parse(Role::Server, {"-c", path.c_str(), "-n", "2048"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_preauth_per_source, 16);
  EXPECT_EQ(c->max_preauth_per_worker, 0);
  EXPECT_EQ(c->nofile, 2048);  // the flag over the file
  c = parse(Role::Local, {"--nofile=300"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->nofile, 300);

  for (const auto& [json, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"max_preauth_per_source": -1})", "max_preauth_per_source"},
           {R"({"max_preauth_per_worker": "many"})", "max_preauth_per_worker"},
           {R"({"nofile": -5})", "nofile"},
       }) {
    const std::string bad_path = writeFile("preauth-bad.json", json);
    auto bad = parse(Role::Server, {"-c", bad_path.c_str()});
    ASSERT_FALSE(bad.ok()) << json;
    EXPECT_TRUE(absl::StrContains(bad.status().message(), field + ": ")) << bad.status();
  }
  auto bad = parse(Role::Server, {"--max-preauth-per-source", "-3"});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "--max-preauth-per-source"));
}

TEST(ConfigTest, UnknownKeysAndFlagsErrorAsBefore) {
  struct Case {
    std::vector<std::string> argv;
    std::string want;
  };
  for (const Case& k : std::vector<Case>{
           {{"--bogus"}, "unknown option \"--bogus\" (see shadowrelay server --help)"},
           {{"--bogus=1"}, "unknown option \"--bogus=1\" (see shadowrelay server --help)"},
           {{"--no-server"}, "unknown option \"--no-server\" (see shadowrelay server --help)"},
           {{"-u=1"}, "unknown option \"-u=1\" (see shadowrelay server --help)"},
           {{"-p"}, "option -p needs a value"},
           {{"-s", "a", "--server-port"}, "option --server-port needs a value"},
           {{"-c"}, "option -c needs a value"},
           {{"-p", "65536"}, "option -p: \"65536\" is not a port (0..65535)"},
           {{"--workers=0"}, "option --workers: \"0\" is not a number in 1..1024"},
           {{"-t", "x"}, "option -t: \"x\" is not a number in 1..604800"},
           {{"--mode", "both"},
            "option --mode: \"both\" is not one of tcp_only, tcp_and_udp, udp_only"},
           {{"-L", "nocolon"},
            "option -L: \"nocolon\" is not host:port (write IPv6 as [addr]:port)"},
       }) {
    SCOPED_TRACE(absl::StrJoin(k.argv, " "));
    auto c = parseStrings(Role::Server, k.argv);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().message(), k.want);
  }
  const std::string path = writeFile("unknown.json", R"({"no_such_key": "obfs-server"})");
  auto c = parse(Role::Server, {"-c", path.c_str()});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), absl::StrCat(path, ": no_such_key: unknown key"));
  // Flag-only options are no JSON keys.
  for (const char* key : {"config", "help", "check_config"}) {
    const std::string p = writeFile("flag-only.json", absl::StrCat("{\"", key, "\": true}"));
    c = parse(Role::Server, {"-c", p.c_str()});
    ASSERT_FALSE(c.ok()) << key;
    EXPECT_EQ(c.status().message(), absl::StrCat(p, ": ", key, ": unknown key"));
  }
}

// Issue 15's UDP bounds: flags and JSON keys, their defaults, and errors naming the field.
TEST(ConfigTest, UdpHardeningOptionsHaveDefaultsFlagsKeysAndRanges) {
  auto c = parseStrings(Role::Server, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->udp_max_trials, 64);
  EXPECT_EQ(c->udp_trial_budget, 4096);
  EXPECT_EQ(c->udp_source_trial_budget, 1024);
  EXPECT_EQ(c->udp_user_max_associations, 0);
  EXPECT_EQ(c->udp_queue_bytes, 16 << 20);
  c = parseStrings(Role::Server, {"--udp-max-trials", "8", "--udp-trial-budget=100",
                                  "--udp-source-trial-budget", "10",
                                  "--udp-user-max-associations", "5", "--udp-queue-bytes",
                                  "1048576"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->udp_max_trials, 8);
  EXPECT_EQ(c->udp_trial_budget, 100);
  EXPECT_EQ(c->udp_source_trial_budget, 10);
  EXPECT_EQ(c->udp_user_max_associations, 5);
  EXPECT_EQ(c->udp_queue_bytes, 1 << 20);
  const std::string path = writeFile("udp-bounds.json", R"({"udp_max_trials": 0})");
  c = parse(Role::Server, {"-c", path.c_str()});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            absl::StrCat(path, ": udp_max_trials: \"0\" is not a number in 1..100000"));
  c = parseStrings(Role::Server, {"--udp-queue-bytes", "100"});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "option --udp-queue-bytes: \"100\" is not a number in 65536..1073741824");
}

TEST(ConfigTest, UsersListErrorsNameTheEntry) {
  const std::string path = writeFile("users.json", R"({"users": [
    {"name": "a", "password": "p"}, {"name": "b", "password": "p"},
    {"name": "c", "password": "p", "port": 0}]})");
  auto c = parse(Role::Server, {"-c", path.c_str()});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            absl::StrCat(path, ": users: users[2].port: \"0\" is not a port (1..65535)"));
}

TEST(ConfigTest, UsersTakeExpiryAndRenewingQuotasAndMaxUsers) {
  const std::string path = writeFile("limits.json", R"({"max_users": 50, "users": [
    {"name": "a", "password": "p", "expire_time": "2027-01-31T00:00:00Z",
     "expire_after_first_use": "30d", "data_quota_bytes": 1000000, "data_quota_period": "monthly"},
    {"name": "b", "password": "p", "expire_after_first_use": 3600}]})");
  auto c = parse(Role::Server, {"-c", path.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_users, 50);
  EXPECT_EQ(c->users[0].expire_time, "2027-01-31T00:00:00Z");
  EXPECT_EQ(c->users[0].expire_after_first_use, 30 * 86400);
  EXPECT_EQ(c->users[0].data_quota_bytes, 1000000u);
  EXPECT_EQ(c->users[0].data_quota_period, "monthly");
  EXPECT_EQ(c->users[1].expire_after_first_use, 3600);
  // --check-config shows them (no secret).
  const std::string report = checkReport(*c);
  EXPECT_NE(report.find("a (expire_time 2027-01-31T00:00:00Z, expire_after_first_use 2592000 s, "
                        "data_quota_bytes 1000000 monthly), b (expire_after_first_use 3600 s)"),
            std::string::npos)
      << report;
  c = parse(Role::Server, {"-c", path.c_str(), "--max-users", "7"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_users, 7);

  const std::pair<std::string, std::string> refused[] = {
      {R"({"name": "a", "password": "p", "expire_time": "next week"})",
       "users[0].expire_time: not an RFC 3339 time"},
      {R"({"name": "a", "password": "p", "expire_after_first_use": "3w"})",
       "users[0].expire_after_first_use: must be seconds, or a number with s, m, h or d"},
      {R"({"name": "a", "password": "p", "expire_after_first_use": 0})",
       "users[0].expire_after_first_use: must be positive"},
      {R"({"name": "a", "password": "p", "data_quota_period": "hourly"})",
       "users[0].data_quota_period: must be none, daily, weekly or monthly"},
      {R"({"name": "a", "password": "p", "data_quota_bytes": -1})",
       "users[0].data_quota_bytes: must be a non-negative integer"},
  };
  for (const auto& [user, message] : refused) {
    const std::string bad = writeFile("bad-limits.json", absl::StrCat(R"({"users": [)", user, "]}"));
    auto b = parse(Role::Server, {"-c", bad.c_str()});
    ASSERT_FALSE(b.ok()) << user;
    EXPECT_NE(std::string(b.status().message()).find(message), std::string::npos) << b.status();
  }
}

// Issue 18 §1: users[].max_devices, --device-window, --show-client-addresses.
TEST(ConfigTest, DeviceLimitOptions) {
  auto c = parseStrings(Role::Server, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->device_window_seconds, 600);
  EXPECT_FALSE(c->show_client_addresses);
  const std::string path = writeFile("devices.json", R"({"device_window": 30,
    "show_client_addresses": true,
    "users": [{"name": "a", "password": "p", "max_devices": 3}, {"name": "b", "password": "p"}]})");
  c = parse(Role::Server, {"-c", path.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->device_window_seconds, 30);
  EXPECT_TRUE(c->show_client_addresses);
  ASSERT_EQ(c->users.size(), 2u);
  EXPECT_EQ(c->users[0].max_devices, 3u);
  EXPECT_EQ(c->users[1].max_devices, 0u);
  EXPECT_TRUE(absl::StrContains(checkReport(*c), "a (max_devices 3)")) << checkReport(*c);
  c = parseStrings(Role::Server, {"--device-window", "5", "--show-client-addresses"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->device_window_seconds, 5);
  EXPECT_TRUE(c->show_client_addresses);
  c = parseStrings(Role::Server, {"--device-window", "-1"});
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::StrContains(c.status().message(), "--device-window")) << c.status();
  for (const char* bad : {R"(-1)", R"("3")", R"(4294967296)", R"(1.5)"}) {
    const std::string file = writeFile(
        "bad-devices.json",
        absl::StrCat(R"({"users": [{"name": "a", "password": "p", "max_devices": )", bad, "}]}"));
    c = parse(Role::Server, {"-c", file.c_str()});
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_EQ(c.status().message(),
              absl::StrCat(file, ": users: users[0].max_devices: must be a whole number "
                                 "0..4294967295"));
  }
}

// Per-user bandwidth (issue 18 §3): a users entry's bytes_per_second and the default for the
// others, from the file and the flag; bad values name the field.
TEST(ConfigTest, BytesPerSecondOfUsersAndTheDefault) {
  auto c = parseStrings(Role::Server, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->default_bytes_per_second, 0);  // unlimited
  const std::string path = writeFile("rates.json", R"({"default_bytes_per_second": 65536,
    "users": [{"name": "a", "password": "p", "bytes_per_second": 5000000000},
              {"name": "b", "password": "p"}]})");
  c = parse(Role::Server, {"-c", path.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->default_bytes_per_second, 65536);
  ASSERT_EQ(c->users.size(), 2u);
  EXPECT_EQ(c->users[0].bytes_per_second, uint64_t{5000000000});  // over 32 bits
  EXPECT_EQ(c->users[1].bytes_per_second, 0u);
  c = parse(Role::Server, {"-c", path.c_str(), "--default-bytes-per-second", "1048576"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->default_bytes_per_second, 1 << 20);
  c = parseStrings(Role::Server, {"--default-bytes-per-second", "-1"});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "option --default-bytes-per-second: \"-1\" is not a number in 0..2147483647");
  const std::string bad = writeFile("bad-rate.json", R"({"users": [
    {"name": "a", "password": "p", "bytes_per_second": "fast"}]})");
  c = parse(Role::Server, {"-c", bad.c_str()});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            absl::StrCat(bad, ": users: users[0].bytes_per_second: must be a non-negative "
                              "integer"));
}

TEST(ConfigTest, FlagsOverrideTheFileWhereverMinusCStands) {
  const std::string path = writeFile("order.json", R"({"server_port": 8400, "server": "a.test"})");
  auto c = parse(Role::Local, {"-p", "9000", "-s", "b.test", "-c", path.c_str(), "-s", "c.test"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server_port, 9000);
  EXPECT_EQ(c->server_hosts, (std::vector<std::string>{"b.test", "c.test"}));
  c = parseStrings(Role::Local, {"--config=" + path});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server_hosts, std::vector<std::string>{"a.test"});
}

}  // namespace
}  // namespace shadowrelay::relay


namespace shadowrelay::relay {
namespace {

// --- Several servers for local and tunnel (relay/upstream) ---

TEST(ServersConfigTest, ServersArrayAsShadowsocksRustWritesIt) {
  const std::string path = writeFile("servers.json", R"({
    "server": "a.test", "server_port": 8388, "password": "top", "method": "aes-128-gcm",
    "servers": [
      {"address": "b.test", "port": 8389, "method": "chacha20-ietf-poly1305", "password": "pb",
       "remarks": "bee"},
      {"server": "c.test", "server_port": "8390", "key": "AAECAwQFBgcICQoLDA0ODw=="},
      {"server": "d.test", "server_port": 8391, "disabled": true}
    ]})");
  auto c = parse(Role::Local, {"-c", path.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(validateConfig(*c).ok()) << validateConfig(*c);
  const std::vector<ServerEntry> all = clientServers(*c);
  ASSERT_EQ(all.size(), 3u) << "the disabled entry is left out";
  EXPECT_EQ(all[0], (ServerEntry{.host = "a.test", .port = 8388, .password = "top", .key = "",
                                 .method = "aes-128-gcm", .name = ""}));
  EXPECT_EQ(all[1], (ServerEntry{.host = "b.test", .port = 8389, .password = "pb", .key = "",
                                 .method = "chacha20-ietf-poly1305", .name = "bee"}));
  EXPECT_EQ(all[2], (ServerEntry{.host = "c.test", .port = 8390, .password = "",
                                 .key = "AAECAwQFBgcICQoLDA0ODw==", .method = "aes-128-gcm",
                                 .name = ""}))
      << "the top-level method fills in";
  EXPECT_EQ(serverLabel(all[0]), "a.test:8388");
  EXPECT_EQ(serverLabel(all[1]), "bee");
  const std::string report = checkReport(*c);
  EXPECT_NE(report.find("bee (chacha20-ietf-poly1305), c.test:8390"), std::string::npos) << report;
  EXPECT_EQ(report.find("pb"), std::string::npos) << "no secret in the report";
}

TEST(ServersConfigTest, RepeatedServerFlagsShareThePortMethodAndSecret) {
  auto c = parse(Role::Tunnel, {"-s", "127.0.0.1", "-s", "127.0.0.2", "-p", "9000", "-k", "pw",
                                "-L", "example.com:53", "--server-probe-interval", "3"});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(validateConfig(*c).ok()) << validateConfig(*c);
  const std::vector<ServerEntry> all = clientServers(*c);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].host, "127.0.0.2");
  EXPECT_EQ(all[1].port, 9000);
  EXPECT_EQ(all[1].password, "pw");
  EXPECT_EQ(c->server_probe_interval_seconds, 3);
}

TEST(ServersConfigTest, ServersWithoutATopLevelServerOrSecret) {
  const std::string path = writeFile("servers-only.json", R"({"servers": [
      {"server": "b.test", "server_port": 8389, "method": "aes-256-gcm", "password": "pb"}]})");
  auto c = parse(Role::Local, {"-c", path.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(validateConfig(*c).ok()) << validateConfig(*c);
}

TEST(ServersConfigTest, ErrorsNameTheEntryAndField) {
  struct Case {
    const char* servers;
    const char* error;
  };
  const Case cases[] = {
      {R"([{"server": "b.test", "server_port": 1, "method": "rot13", "password": "x"}])",
       "config: servers[0].method: "},
      {R"([{"server": "b.test", "server_port": 1}, {"server": "c.test", "server_port": 2,
           "method": "aes-128-gcm"}])",
       "config: servers[0].password: missing"},
      {R"([{"server": "b.test", "server_port": 1, "method": "2022-blake3-aes-128-gcm",
           "password": "not base64!"}])",
       "config: servers[0].password: PSK: not valid base64"},
      {R"([{"server": "b.test", "server_port": 1, "password": "x", "name": "same"},
           {"server": "c.test", "server_port": 2, "password": "y", "name": "same"}])",
       "config: servers[1]: \"same\" is given twice"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.servers);
    const std::string path = writeFile("servers-bad.json", absl::StrCat(R"({"servers": )",
                                                                        k.servers, "}"));
    auto c = parse(Role::Local, {"-c", path.c_str()});
    ASSERT_TRUE(c.ok()) << c.status();
    const absl::Status s = validateConfig(*c);
    EXPECT_NE(std::string(s.message()).find(k.error), std::string::npos) << s;
  }
  const struct {
    const char* servers;
    const char* error;
  } parse_cases[] = {
      {R"([{"server_port": 1}])", "servers[0].server: missing"},
      {R"([{"server": "b.test"}])", "servers[0].server_port: missing"},
      {R"([{"server": "b.test", "port": 0}])", "servers[0].port: "},
      {R"([{"server": "b.test", "port": 1, "plugin": "obfs-local"}])",
       "servers[0].plugin: not per server"},
      {R"([{"server": "b.test", "port": 1, "colour": "red"}])", "servers[0].colour: unknown key"},
      {R"("b.test")", "servers: must be a list"},
  };
  for (const auto& k : parse_cases) {
    SCOPED_TRACE(k.servers);
    const std::string path = writeFile("servers-bad.json", absl::StrCat(R"({"servers": )",
                                                                        k.servers, "}"));
    auto c = parse(Role::Local, {"-c", path.c_str()});
    ASSERT_FALSE(c.ok());
    EXPECT_NE(std::string(c.status().message()).find(k.error), std::string::npos) << c.status();
  }
}

TEST(ServersConfigTest, APluginTakesOneServer) {
  const std::string path = writeFile("servers-plugin.json", R"({"plugin": "obfs-local",
      "servers": [{"server": "b.test", "server_port": 8389, "password": "pb"}]})");
  auto c = parse(Role::Local, {"-c", path.c_str()});
  ASSERT_TRUE(c.ok()) << c.status();
  const absl::Status s = validateConfig(*c);
  EXPECT_NE(std::string(s.message()).find("config: servers: a plugin connects to one server"),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace shadowrelay::relay
