// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp_association.h"

#include "absl/strings/str_cat.h"
#include "relay/event/event_loop.h"

namespace shadowrelay::relay {

namespace {
constexpr auto kSweepInterval = std::chrono::seconds(1);
}  // namespace

void UdpStats::add(const UdpStats& o) {
  packets_in += o.packets_in;
  packets_out += o.packets_out;
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
  dropped_open += o.dropped_open;
  dropped_replay += o.dropped_replay;
  dropped_address += o.dropped_address;
  dropped_refused += o.dropped_refused;
  dropped_resolve += o.dropped_resolve;
  dropped_send += o.dropped_send;
  dropped_too_big += o.dropped_too_big;
  associations += o.associations;
  evictions += o.evictions;
  expirations += o.expirations;
}

std::string UdpStats::summary() const {
  return absl::StrCat("packets_in=", packets_in, " packets_out=", packets_out,
                      " bytes_in=", bytes_in, " bytes_out=", bytes_out,
                      " dropped{open=", dropped_open, " replay=", dropped_replay,
                      " address=", dropped_address, " refused=", dropped_refused,
                      " resolve=", dropped_resolve, " send=", dropped_send,
                      " too_big=", dropped_too_big, "} associations=", associations,
                      " evictions=", evictions, " expirations=", expirations);
}

std::string udpPeerKey(const SocketAddress& address) {
  return std::string(reinterpret_cast<const char*>(&address.storage), address.len);
}

UdpAssociationTable::UdpAssociationTable(EventLoop& loop, size_t capacity,
                                         Clock::duration shortest_timeout, UdpStats& stats)
    : loop_(loop),
      table_(capacity),
      shortest_timeout_(shortest_timeout),
      stats_(stats),
      sweep_timer_(loop, [this] { sweep(); }) {
  sweep_timer_.armAfter(kSweepInterval);
}

void UdpAssociationTable::sweep() {
  stats_.expirations += table_.expire(Clock::now(), shortest_timeout_);
  sweep_timer_.armAfter(kSweepInterval);
}

UdpAssociationTable::Entry& UdpAssociationTable::add(
    std::string key, const SocketAddress& peer, Fd fd, int family, Clock::duration idle_timeout,
    std::function<void(UdpAssociation&)> on_readable) {
  auto association = std::make_unique<UdpAssociation>();
  association->key = key;
  association->peer = peer;
  association->family = family;
  association->fd = std::move(fd);
  UdpAssociation* raw = association.get();
  association->watcher.emplace(loop_, raw->fd.get(), kReadable,
                               [raw, cb = std::move(on_readable)](uint32_t) { cb(*raw); });
  const uint64_t evicted_before = table_.evictions();
  Entry& entry = table_.insert(std::move(key), std::move(association), Clock::now(), idle_timeout);
  stats_.evictions += table_.evictions() - evicted_before;
  ++stats_.associations;
  return entry;
}

}  // namespace shadowrelay::relay
