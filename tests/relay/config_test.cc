// SPDX-License-Identifier: Apache-2.0
#include "relay/config.h"

#include <fstream>

#include "gtest/gtest.h"

namespace shadowrelay::relay {
namespace {

absl::StatusOr<Config> parse(Role role, std::vector<const char*> args) {
  return parseConfig(role, static_cast<int>(args.size()), args.data());
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
  EXPECT_EQ(c->tunnel_destination, (HostPort{"example.com", 53}));
  EXPECT_TRUE(validateConfig(*c).ok());
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
           {R"({"plugin": "obfs-server"})", "plugin: unknown key"},
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
  auto bad_port = parse(Role::Server, {"-p", "0"});
  ASSERT_FALSE(bad_port.ok());
  EXPECT_NE(std::string(bad_port.status().message()).find("-p"), std::string::npos);
  EXPECT_FALSE(parse(Role::Server, {"-p"}).ok());
}

TEST(ConfigTest, HostPortForms) {
  EXPECT_EQ(*parseHostPort("example.com:80"), (HostPort{"example.com", 80}));
  EXPECT_EQ(*parseHostPort("[::1]:53"), (HostPort{"::1", 53}));
  EXPECT_FALSE(parseHostPort("::1:53").ok());
  EXPECT_FALSE(parseHostPort("host:").ok());
  EXPECT_FALSE(parseHostPort(":80").ok());
}

TEST(ConfigTest, DescribeHasNoSecrets) {
  auto c = parse(Role::Local, {"-s", "1.2.3.4", "-k", "hunter2-secret"});
  EXPECT_EQ(describe(*c).find("hunter2"), std::string::npos);
}

}  // namespace
}  // namespace shadowrelay::relay
