// SPDX-License-Identifier: Apache-2.0
#pragma once
// Where a relayed datagram goes: its Shadowsocks/SOCKS5 destination as a socket address. IP
// literals at once, names from the resolver's cache at once, other names after a query (the
// datagram copied meanwhile; at most `max_pending` wait, and all the routers of a worker hold at
// most its ByteBudget of such copies (--udp-queue-bytes): the rest are dropped).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <span>
#include <string>

#include "crypto/address.h"
#include "dns/resolver.h"
#include "relay/context/worker_budgets.h"
#include "relay/net/endpoint.h"
#include "relay/net/socket.h"
#include "relay/stats/udp_stats.h"

namespace shadowrelay::relay {

class DatagramRouter {
 public:
  using Deliver = std::function<void(const SocketAddress& to, std::span<const uint8_t> payload)>;

  /// What one waiting datagram costs besides its payload (the copy's node, its callbacks and
  /// the resolver's query), charged to `budget` with it.
  static constexpr size_t kPendingOverhead = 512;

  /// `budget` (may be null: no byte bound) is shared by the worker's routers and UoT queues;
  /// a datagram it cannot take is counted as dropped_memory in `stats` (may be null).
  DatagramRouter(dns::Resolver& resolver, dns::AddressPreference preference, size_t max_pending,
                 ByteBudget* budget = nullptr, UdpStats* stats = nullptr);
  ~DatagramRouter();
  DatagramRouter(const DatagramRouter&) = delete;
  DatagramRouter& operator=(const DatagramRouter&) = delete;

  enum class Lookup { Now, NeedQuery, Failed };
  /// Now: `*to` is the destination (IP literal, or a name the cache knows). NeedQuery: pass
  /// the datagram to queue(). Failed: the name is known not to resolve.
  Lookup lookup(const crypto::SocksAddress& target, SocketAddress* to);
  enum class Queued { Yes, Full, NoMemory };
  /// Copies the datagram and resolves `target`; `deliver` runs with the first address, or
  /// `on_failed` if the query fails. Full: too many wait already; NoMemory: the byte budget is
  /// spent (counted); nothing is queued then. Callbacks never run after destruction.
  Queued queue(const crypto::SocksAddress& target, std::span<const uint8_t> payload,
               Deliver deliver, std::function<void()> on_failed);
  size_t pendingCount() const { return pending_.size(); }

  /// lookup() then, as it says, `deliver` at once, queue(), or `on_failed` (also when the queue
  /// is full; not when the byte budget is spent, which is counted as dropped_memory): one
  /// datagram to `target` on its way. Nothing is allocated when the address is known.
  template <typename DeliverFn, typename FailedFn>
  void route(const crypto::SocksAddress& target, std::span<const uint8_t> payload,
             DeliverFn deliver, FailedFn on_failed) {
    SocketAddress to;
    switch (lookup(target, &to)) {
      case Lookup::Now:
        deliver(to, payload);
        return;
      case Lookup::Failed:
        on_failed();
        return;
      case Lookup::NeedQuery:
        break;
    }
    if (queue(target, payload, std::move(deliver), on_failed) == Queued::Full) on_failed();
  }

 private:
  struct Pending {
    BudgetHold bytes;  // declared first: given back after the query is cancelled
    dns::ResolveHandle handle;
  };

  dns::Resolver& resolver_;
  const dns::AddressPreference preference_;
  const size_t max_pending_;
  ByteBudget* const budget_;
  UdpStats* const stats_;
  std::list<Pending> pending_;
};

}  // namespace shadowrelay::relay
