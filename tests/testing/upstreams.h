// SPDX-License-Identifier: Apache-2.0
#pragma once
// The balancer of a client role under test with one server: what local and tunnel sessions
// and UDP ports ask for their server (relay/upstream).

#include <memory>
#include <vector>

#include "relay/context/relay_env.h"
#include "relay/net/endpoint.h"
#include "relay/upstream/upstream_balancer.h"

namespace shadowrelay::relay::testing {

/// `env`'s one server (config.server_hosts[0] and server_port for TCP, env.udp_server for UDP,
/// env.credentials) as a balancer, and env.upstreams pointed at it. Keep it while the workers
/// that read `env` run.
inline std::unique_ptr<UpstreamBalancer> singleUpstream(RelayEnv& env) {
  Upstream server;
  server.label = "test-server";
  if (!env.config.server_hosts.empty()) {
    server.endpoint = Endpoint{env.config.server_hosts.front(), env.config.server_port};
    server.address = server.endpoint.socksAddress();
  }
  server.resolved = env.udp_server;
  server.credentials = env.credentials;
  std::vector<Upstream> servers;
  servers.push_back(std::move(server));
  auto balancer = std::make_unique<UpstreamBalancer>(std::move(servers));
  env.upstreams = balancer.get();
  return balancer;
}

}  // namespace shadowrelay::relay::testing
