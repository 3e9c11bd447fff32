// SPDX-License-Identifier: Apache-2.0
#pragma once
// Where a relayed datagram goes: its Shadowsocks/SOCKS5 destination as a socket address. IP
// literals at once, names from the resolver's cache at once, other names after a query (the
// datagram copied meanwhile; at most `max_pending` wait, the rest are dropped).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <span>
#include <string>

#include "crypto/address.h"
#include "dns/resolver.h"
#include "relay/net/endpoint.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay {

class DatagramRouter {
 public:
  using Deliver = std::function<void(const SocketAddress& to, std::span<const uint8_t> payload)>;

  DatagramRouter(dns::Resolver& resolver, dns::AddressPreference preference, size_t max_pending);
  ~DatagramRouter();
  DatagramRouter(const DatagramRouter&) = delete;
  DatagramRouter& operator=(const DatagramRouter&) = delete;

  enum class Lookup { Now, NeedQuery, Failed };
  /// Now: `*to` is the destination (IP literal, or a name the cache knows). NeedQuery: pass
  /// the datagram to queue(). Failed: the name is known not to resolve.
  Lookup lookup(const crypto::SocksAddress& target, SocketAddress* to);
  /// Copies the datagram and resolves `target`; `deliver` runs with the first address, or
  /// `on_failed` if the query fails. False (nothing queued) when too many wait already.
  /// Callbacks never run after destruction.
  bool queue(const crypto::SocksAddress& target, std::span<const uint8_t> payload,
             Deliver deliver, std::function<void()> on_failed);

  /// lookup() then, as it says, `deliver` at once, queue(), or `on_failed` (also when the queue
  /// is full): one datagram to `target` on its way. Nothing is allocated when the address is
  /// known.
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
    if (!queue(target, payload, std::move(deliver), on_failed)) on_failed();
  }

 private:
  struct Pending {
    dns::ResolveHandle handle;
  };

  dns::Resolver& resolver_;
  const dns::AddressPreference preference_;
  const size_t max_pending_;
  std::list<Pending> pending_;
};

}  // namespace shadowrelay::relay
