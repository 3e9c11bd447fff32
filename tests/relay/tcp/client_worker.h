// SPDX-License-Identifier: Apache-2.0
#pragma once
// The worker of a client role (local, tunnel) under test: it relays to the loopback listener the
// test plays the Shadowsocks server on, and accepts the app's connections on a port of its own.

#include <cstdint>
#include <memory>

#include "gtest/gtest.h"
#include "relay/context/relay_env.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/worker/worker.h"
#include "tests/testing/loopback.h"
#include "tests/testing/upstreams.h"

namespace shadowrelay::relay {

/// Points `env` at `server` (through `*upstreams`, which must outlive the worker), makes
/// `*worker` on `loop` and sets `*port` to where apps connect. Use with ASSERT_NO_FATAL_FAILURE.
inline void startClientWorker(EventLoop& loop, RelayEnv& env, const Fd& server,
                              std::unique_ptr<UpstreamBalancer>* upstreams,
                              std::unique_ptr<Worker>* worker, uint16_t* port) {
  env.config.server_hosts = {"127.0.0.1"};
  env.config.server_port = testing::portOf(server.get());
  *upstreams = testing::singleUpstream(env);
  *worker = std::make_unique<Worker>(loop, env, 0);
  ASSERT_TRUE((*worker)->init().ok());
  (*worker)->addListener(testing::listenLoopback());
  *port = (*worker)->listenPortForTest();
  ASSERT_NE(*port, 0);
}

}  // namespace shadowrelay::relay
