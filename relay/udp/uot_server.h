// SPDX-License-Identifier: Apache-2.0
#pragma once
// The server end of one UDP-over-TCP stream (relay/udp/uot.h). The Shadowsocks session relays
// the stream's plaintext into one end of a socket pair; this reads the other: each datagram goes
// out of one UDP socket to its destination (names through the worker's resolver, the
// private-target policy as for TCP), and what comes back is framed with its source and written
// to the stream. Ends when the stream does (closing its end of the pair ends the session's
// relay); the owner destroys it with the session.

#include <memory>
#include <optional>
#include <span>

#include "crypto/address.h"
#include "dns/resolver.h"
#include "relay/context/worker_budgets.h"
#include "relay/event/io_watcher.h"
#include "relay/net/socket.h"
#include "relay/target_policy.h"
#include "relay/udp/datagram_router.h"
#include "relay/udp/udp_association.h"
#include "relay/udp/uot.h"

namespace shadowrelay::relay {

class EventLoop;

class UotServer {
 public:
  struct Context {
    EventLoop* loop = nullptr;
    dns::Resolver* resolver = nullptr;
    dns::AddressPreference preference = dns::AddressPreference::Ipv4First;
    TargetPolicy target_policy;
    UdpStats* stats = nullptr;
    /// The worker's bound on held datagrams (waiting on DNS, queued for the stream); may be
    /// null (no byte bound beyond the per-stream counts).
    ByteBudget* queue_budget = nullptr;
  };

  /// `stream`: this side of the pair; `version`: 1 or 2 (uot::versionOf the session's target).
  UotServer(const Context& context, Fd stream, int version);
  ~UotServer();
  UotServer(const UotServer&) = delete;
  UotServer& operator=(const UotServer&) = delete;

 private:
  void onDatagram(const crypto::SocksAddress& destination, std::span<const uint8_t> payload);
  void forward(const SocketAddress& to, std::span<const uint8_t> payload);
  void onReplies();
  void onStreamClosed();

  const Context context_;
  std::unique_ptr<UotChannel> channel_;
  Fd socket_;  // made on the first datagram
  int family_ = AF_UNSPEC;
  std::optional<IoWatcher> watcher_;
  DatagramRouter router_;  // declared last: its pending callbacks reach the members above
};

}  // namespace shadowrelay::relay
