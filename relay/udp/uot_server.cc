// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/uot_server.h"

#include <sys/socket.h>

#include <memory>

#include "relay/event/event_loop.h"
#include "relay/target_policy.h"

namespace shadowrelay::relay {

namespace {
constexpr size_t kMaxPendingResolves = 64;  // per stream
constexpr int kRepliesPerEvent = 64;

uint8_t* replyBuffer() {
  thread_local std::unique_ptr<uint8_t[]> buffer =
      std::make_unique_for_overwrite<uint8_t[]>(udp::kMaxDatagram);
  return buffer.get();
}
}  // namespace

UotServer::UotServer(const Context& context, Fd stream, int version)
    : context_(context),
      channel_(UotChannel::server(
          *context.loop, std::move(stream), version,
          [this](const crypto::SocksAddress& destination, std::span<const uint8_t> payload) {
            onDatagram(destination, payload);
          },
          [this] { onStreamClosed(); })),
      router_(*context.resolver, context.preference, kMaxPendingResolves, context.queue_budget,
              context.stats) {
  channel_->setBudget(context.queue_budget, &context.stats->dropped_memory);
  ++context_.stats->associations;
}

UotServer::~UotServer() {
  if (watcher_) watcher_->willCloseFd();
}

void UotServer::onDatagram(const crypto::SocksAddress& destination,
                           std::span<const uint8_t> payload) {
  router_.route(
      destination, payload,
      [this](const SocketAddress& to, std::span<const uint8_t> data) { forward(to, data); },
      [this] { ++context_.stats->dropped_resolve; });
}

void UotServer::forward(const SocketAddress& to, std::span<const uint8_t> payload) {
  UdpStats& stats = *context_.stats;
  if (!context_.target_policy.allows(to.get())) {
    ++stats.dropped_refused;
    return;
  }
  if (!channel_) return;  // the stream ended while a name resolved
  if (!socket_.valid()) {
    socket_ = openRelaySocket(&family_);
    if (!socket_.valid()) {
      ++stats.dropped_send;
      return;
    }
    watcher_.emplace(*context_.loop, socket_.get(), kReadable, [this](uint32_t) { onReplies(); });
  }
  const SocketAddress target = family_ == AF_INET6 ? asV6(to) : to;
  if (::sendto(socket_.get(), payload.data(), payload.size(), 0, target.get(), target.len) < 0) {
    ++stats.dropped_send;
    return;
  }
  ++stats.packets_in;
  stats.bytes_in += payload.size();
}

void UotServer::onReplies() {
  UdpStats& stats = *context_.stats;
  uint8_t* buf = replyBuffer();
  for (int i = 0; i < kRepliesPerEvent && channel_; ++i) {
    SocketAddress from;
    from.len = sizeof(from.storage);
    const ssize_t n = ::recvfrom(socket_.get(), buf, udp::kMaxDatagram, 0, from.get(),
                                 &from.len);
    if (n < 0) return;
    const size_t len = static_cast<size_t>(n);
    if (!channel_->send(socksAddressOf(from), {buf, len})) {
      ++stats.dropped_send;  // the stream is backed up: a datagram is lost, as on a real path
      continue;
    }
    ++stats.packets_out;
    stats.bytes_out += len;
  }
}

void UotServer::onStreamClosed() {
  // The session closed its end, or the stream broke: stop relaying. Closing our end of the
  // pair tells the session (EOF on its remote side).
  channel_.reset();
  watcher_.reset();
  socket_.reset();
}

}  // namespace shadowrelay::relay
