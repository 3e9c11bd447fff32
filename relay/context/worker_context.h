// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a session or a UDP port may ask of the worker that owns it. Implemented by
// relay/worker's Worker; every method is loop-thread only.

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "crypto/address.h"
#include "dns/resolver.h"
#include "relay/context/relay_env.h"
#include "relay/context/worker_budgets.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/stats/relay_sample.h"
#include "relay/stats/tcp_stats.h"
#include "relay/stats/udp_stats.h"
#include "relay/users/user_matcher.h"

namespace shadowrelay::relay {

class WorkerContext {
 public:
  /// Reads per event and the largest read: four full AEAD chunks of payload.
  static constexpr size_t kReadSize = 4 * 0x3FFF;
  /// Bytes of each scratch buffer: a read plus one sealed chunk's growth. It also holds a whole
  /// Shadowsocks 2022 chunk (0xFFFF + 2 tags + length): after a 2022 partial unit the read is cut
  /// to what is left (TcpSession::takeRecv), so the 2017 sizes stay as they are.
  static constexpr size_t kScratchSize = kReadSize + 0x3FFF + 256;
  static_assert(kScratchSize >= 2 + 0xFFFF + 2 * 16 + 4096, "a 2022 chunk and a read of 4 KiB");

  virtual ~WorkerContext() = default;

  virtual EventLoop& loop() = 0;
  virtual const RelayEnv& env() const = 0;
  virtual dns::Resolver& resolver() = 0;
  virtual TcpStats& stats() = 0;
  /// What the SOCKS5 UDP associations and UDP over TCP of this worker relayed.
  virtual UdpStats& udpStats() = 0;
  /// This worker's counters for the metrics exporter.
  virtual WorkerSample& sample() = 0;
  /// The traffic entry of user `name` ("" for none); the reference stays valid until the user
  /// is retired by a table swap that closed its sessions and associations.
  virtual UserTraffic& traffic(absl::string_view name) = 0;
  /// Server: the users, and the trial decryption over them.
  virtual UserMatcher& users() = 0;
  /// What this worker may spend on UDP trial decryption and on datagrams held in memory.
  virtual WorkerBudgets& budgets() = 0;
  /// Two kScratchSize buffers, free for the duration of one callback (not kept across).
  virtual uint8_t* scratchIn() = 0;
  virtual uint8_t* scratchOut() = 0;
  /// Relays `fd` (one end of a socket pair) to `target` through the Shadowsocks server, like a
  /// tunnel connection: the stream of UDP over TCP.
  virtual void startStream(Fd fd, const crypto::SocksAddress& target) = 0;
};

}  // namespace shadowrelay::relay
