// SPDX-License-Identifier: Apache-2.0
#include "relay/plugin/sip003_plugin.h"
#include "relay/ss_uri.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "relay/config.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay {
namespace {

std::string makeExecutable(const std::string& dir, const std::string& name, mode_t mode) {
  ::mkdir(dir.c_str(), 0755);
  const std::string path = absl::StrCat(dir, "/", name);
  std::ofstream(path) << "#!/bin/sh\n";
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(FindExecutableTest, SearchesPathInOrderLikeExecvp) {
  const std::string base = ::testing::TempDir();
  const std::string a = absl::StrCat(base, "/path-a");
  const std::string b = absl::StrCat(base, "/path-b");
  makeExecutable(a, "plug", 0644);  // not executable: skipped
  const std::string found = makeExecutable(b, "plug", 0755);
  const std::string path_env = absl::StrCat(a, ":", b);
  auto got = findExecutable("plug", path_env);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, found);
  EXPECT_EQ(*findExecutable(found, ""), found);  // a path is taken as it is
  auto missing = findExecutable("no-such-plugin", path_env);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "\"no-such-plugin\" not found"))
      << missing.status();
  EXPECT_FALSE(findExecutable(absl::StrCat(a, "/plug"), "").ok());
  EXPECT_FALSE(findExecutable(a, "").ok());  // a directory
}

TEST(TcpPortListeningTest, SeesAListenerAndItsEnd) {
  auto address = parseSocketAddress("127.0.0.1", 0);
  ASSERT_TRUE(address.ok());
  ListenOptions options;
  options.reuse_port = false;
  auto fd = listenTcp(*address, options);
  ASSERT_TRUE(fd.ok()) << fd.status();
  const uint16_t port = localAddress(fd->get()).port();
  EXPECT_TRUE(tcpPortListening(port));
  fd->reset();
  EXPECT_FALSE(tcpPortListening(port));
  // Bound but not listening (a client's socket, a port pick): not a listener.
  Fd bound(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::bind(bound.get(), address->get(), address->len), 0);
  EXPECT_FALSE(tcpPortListening(localAddress(bound.get()).port()));
}

TEST(ClientPluginParameterTest, ClientProgramWithoutServerOnlyOptions) {
  EXPECT_EQ(clientPluginParameter("obfs-server", "obfs=http"), "obfs-local;obfs=http");
  EXPECT_EQ(clientPluginParameter("/usr/bin/obfs-server", "obfs=tls;failover=1.2.3.4:443"),
            "obfs-local;obfs=tls");
  EXPECT_EQ(clientPluginParameter("ss-v2ray-plugin",
                                  "server;tls;host=example.com;cert=/c.pem;key=/k.pem"),
            "ss-v2ray-plugin;tls;host=example.com");
  EXPECT_EQ(clientPluginParameter("ss-v2ray-plugin", "server"), "ss-v2ray-plugin");
  EXPECT_EQ(clientPluginParameter("p", ""), "p");
  // An escaped ';' stays inside its option.
  EXPECT_EQ(clientPluginParameter("p", "path=/a\\;b;key=x"), "p;path=/a\\;b");
}

Config pluginConfig(Role role, const std::string& plugin) {
  Config config;
  config.role = role;
  config.plugin = plugin;
  config.plugin_opts = "obfs=http";
  config.server_hosts = {"192.0.2.7"};
  config.server_port = 8443;
  return config;
}

TEST(Sip003PluginTest, NoPluginNoObject) {
  std::vector<SocketAddress> listen;
  auto plugin = Sip003Plugin::create(pluginConfig(Role::Server, ""), listen, false);
  ASSERT_TRUE(plugin.ok());
  EXPECT_EQ(*plugin, nullptr);
}

TEST(Sip003PluginTest, AnUnknownProgramIsAConfigErrorNamingTheField) {
  std::vector<SocketAddress> listen = {*parseSocketAddress("127.0.0.1", 0)};
  auto plugin = Sip003Plugin::create(pluginConfig(Role::Server, "no-such-plugin-x"), listen, true);
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(plugin.status().message(), "config: plugin: ")) << plugin.status();
}

TEST(Sip003PluginTest, ServerPicksAPublicPortFreeForTcpAndUdpAndListensBehindOnLoopback) {
  std::vector<SocketAddress> listen = {*parseSocketAddress("127.0.0.1", 0)};
  auto plugin = Sip003Plugin::create(pluginConfig(Role::Server, "/bin/sh"), listen, true);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  ASSERT_NE(*plugin, nullptr);
  const uint16_t port = listen.front().port();
  ASSERT_NE(port, 0);
  EXPECT_TRUE(bindUdp(listen.front(), false).ok());
  EXPECT_EQ((*plugin)->relayListen().toString(), "127.0.0.1:0");
  EXPECT_EQ((*plugin)->uriParameter(), "sh;obfs=http");
}

TEST(Sip003PluginTest, ClientConnectsToAFreeLoopbackPortInsteadOfTheServer) {
  std::vector<SocketAddress> listen;
  auto plugin = Sip003Plugin::create(pluginConfig(Role::Local, "/bin/sh"), listen, true);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ((*plugin)->relayConnect().host, "127.0.0.1");
  EXPECT_NE((*plugin)->relayConnect().port, 0);
}

TEST(Sip003PluginTest, CheckOnlyBindsNothing) {
  Config config = pluginConfig(Role::Server, "/bin/sh");
  config.check_only = true;
  std::vector<SocketAddress> listen = {*parseSocketAddress("127.0.0.1", 0)};
  auto plugin = Sip003Plugin::create(config, listen, true);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  EXPECT_EQ(listen.front().port(), 0);
}

TEST(Sip003PluginTest, StartFailsClearlyWhenThePluginExitsBeforeListening) {
  // /bin/true exits at once: start() must not wait out its deadline, and says why.
  std::vector<SocketAddress> listen;
  auto plugin = Sip003Plugin::create(pluginConfig(Role::Local, "/bin/true"), listen, false);
  ASSERT_TRUE(plugin.ok()) << plugin.status();
  const auto before = std::chrono::steady_clock::now();
  const absl::Status started = (*plugin)->start();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(5));
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(started.message(), "exited before listening")) << started;
}

}  // namespace
}  // namespace shadowrelay::relay
