// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/datagram_router.h"

#include "dns/ip_address.h"

namespace shadowrelay::relay {

DatagramRouter::DatagramRouter(dns::Resolver& resolver, dns::AddressPreference preference,
                               size_t max_pending, ByteBudget* budget, UdpStats* stats)
    : resolver_(resolver),
      preference_(preference),
      max_pending_(max_pending),
      budget_(budget),
      stats_(stats) {}

DatagramRouter::~DatagramRouter() = default;  // dropping a handle cancels its callback

DatagramRouter::Lookup DatagramRouter::lookup(const crypto::SocksAddress& target,
                                               SocketAddress* to) {
  if (target.type != crypto::SocksAddress::Type::Domain) {
    *to = socketAddressOf(target);
    return Lookup::Now;
  }
  auto cached = resolver_.resolveCached(target.host, preference_);
  if (!cached) return Lookup::NeedQuery;
  if (!cached->ok()) return Lookup::Failed;
  *to = socketAddressOf(cached->addresses.front(), target.port);
  return Lookup::Now;
}

DatagramRouter::Queued DatagramRouter::queue(const crypto::SocksAddress& target,
                                             std::span<const uint8_t> payload, Deliver deliver,
                                             std::function<void()> on_failed) {
  if (pending_.size() >= max_pending_) return Queued::Full;
  BudgetHold bytes;
  if (budget_ != nullptr) {
    const size_t cost = payload.size() + kPendingOverhead;
    if (!budget_->take(cost)) {
      if (stats_ != nullptr) ++stats_->dropped_memory;
      return Queued::NoMemory;
    }
    bytes = BudgetHold(budget_, cost);
  }
  auto it = pending_.emplace(pending_.end());
  it->bytes = std::move(bytes);
  std::string data(reinterpret_cast<const char*>(payload.data()), payload.size());
  const uint16_t port = target.port;
  it->handle = resolver_.resolve(
      target.host, preference_,
      [this, it, port, deliver = std::move(deliver), on_failed = std::move(on_failed),
       data = std::move(data)](dns::ResolveResult result) {
        if (result.ok()) {
          SocketAddress to;
          to = socketAddressOf(result.addresses.front(), port);
          deliver(to, {reinterpret_cast<const uint8_t*>(data.data()), data.size()});
        } else {
          on_failed();
        }
        pending_.erase(it);
      });
  return Queued::Yes;
}

}  // namespace shadowrelay::relay
