// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp_client.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/context/worker_context.h"
#include "relay/upstream/upstream_balancer.h"

namespace shadowrelay::relay {

namespace {
using udp::kMaxDatagram;
using udp::kMaxUdpPayload;
using udp::kPacketsPerEvent;
constexpr size_t kHeaderRoom = 300;  // a domain address header is at most 259 bytes
using udp::kRecvBatch;
constexpr size_t kSlot = kHeaderRoom + kMaxDatagram + 1;
}  // namespace

UdpTunnel::UdpTunnel(WorkerContext& worker, Fd socket, const crypto::SocksAddress& destination,
                     size_t max_associations)
    : worker_(worker),
      socket_(std::move(socket)),
      upstreams_(*worker.env().upstreams),
      watcher_(worker.loop(), socket_.get(), kReadable, [this](uint32_t) { onReadable(); }),
      table_(worker.loop(), max_associations, worker.env().udp_timeout, stats_),
      buf_(std::make_unique_for_overwrite<uint8_t[]>(kRecvBatch * kSlot)),
      out_(std::make_unique_for_overwrite<uint8_t[]>(kHeaderRoom + kMaxDatagram + 128)),
      destination_(destination),
      over_tcp_(worker.env().config.udp_over_tcp) {
  // The destination header is the same for every datagram: write it once, in front of where
  // each datagram is received, in every recvmmsg slot.
  header_size_ = destination.size();
  // The largest datagram every server's method still fits in one packet.
  max_payload_ = kMaxUdpPayload;
  for (size_t i = 0; i < upstreams_.size(); ++i) {
    const Credentials& creds = upstreams_.server(i).credentials;
    codecs_.emplace_back(*creds.method, *creds.provider);
    size_t overhead = header_size_ + codecs_.back().overhead();
    if (creds.method->edition == crypto::Edition::Aead2022) {
      const Udp2022ClientSession probe(*creds.method, *creds.provider, creds.requestKeys());
      overhead = probe.packetSize(destination, 0);
    }
    max_payload_ = std::min(max_payload_, kMaxUdpPayload - std::min(kMaxUdpPayload, overhead));
  }
  for (size_t i = 0; i < kRecvBatch; ++i) {
    crypto::writeAddress(destination,
                         {buf_.get() + i * kSlot + kHeaderRoom - header_size_, header_size_});
  }
}

UdpTunnel::~UdpTunnel() = default;

void UdpTunnel::onReadable() {
  // recvmmsg into slots of [room][header][datagram]: the header sits right before the bytes.
  receiveDatagrams(socket_.get(), buf_.get(), kSlot, kHeaderRoom, kRecvBatch,
                   [this](const SocketAddress& from, uint8_t* data, size_t n) {
                     onDatagram(from, data, n);
                   });
}

void UdpTunnel::onDatagram(const SocketAddress& from, uint8_t* data, size_t n) {
  if (n > max_payload_) {
    ++stats_.dropped_too_big;
    return;
  }
  const std::string key = udpPeerKey(from);
  UdpAssociationTable::Entry* entry = table_.find(key);
  if (over_tcp_) {
    if (entry == nullptr) entry = addStream(key, from);
    if (entry == nullptr || !entry->value->uot->send(destination_, {data, n})) {
      ++stats_.dropped_send;
      return;
    }
  } else {
    if (entry != nullptr && !upstreams_.up(entry->value->upstream) &&
        upstreams_.best(std::hash<std::string>{}(key)) != entry->value->upstream) {
      SR_LOG(Debug, "UDP association of %s: server %s is down; moving",
             entry->value->peer.toString(), upstreams_.server(entry->value->upstream).label);
      table_.erase(key);
      entry = nullptr;
    }
    if (entry == nullptr) entry = addSocket(key, from);
    const size_t sealed = entry != nullptr ? seal(*entry->value, data, n) : 0;
    if (sealed == 0 || ::send(entry->value->fd.get(), out_.get(), sealed, 0) < 0) {
      ++stats_.dropped_send;
      return;
    }
  }
  ++stats_.packets_in;
  stats_.bytes_in += n;
}

UdpAssociationTable::Entry* UdpTunnel::addSocket(const std::string& key,
                                                 const SocketAddress& from) {
  const size_t upstream = upstreams_.best(std::hash<std::string>{}(key));
  const Upstream& server = upstreams_.server(upstream);
  if (!server.resolved) return nullptr;  // resolved at start whenever UDP is relayed
  const int fd = connectNonBlockingUdp(*server.resolved);
  if (fd < 0) return nullptr;
  UdpAssociationTable::Entry& entry =
      table_.add(key, from, Fd(fd), server.resolved->family(), worker_.env().udp_timeout,
                 [this](UdpAssociation& association) { onReply(association); });
  entry.value->upstream = upstream;
  SR_LOG(Debug, "UDP association of %s: server %s", from.toString(), server.label);
  const Credentials& creds = server.credentials;
  if (creds.method->edition == crypto::Edition::Aead2022) {
    // One 2022 client session per sender: its own session ID and packet counter (§2.5).
    entry.value->client2022 =
        std::make_unique<Udp2022ClientSession>(*creds.method, *creds.provider,
                                               creds.requestKeys());
  }
  return &entry;
}

size_t UdpTunnel::seal(UdpAssociation& association, uint8_t* data, size_t n) {
  const std::span<uint8_t> out(out_.get(), kHeaderRoom + kMaxDatagram + 128);
  if (association.client2022 != nullptr) {
    return association.client2022->seal(destination_, {data, n}, out,
                                        worker_.loop().unixSeconds());
  }
  // The destination header was written right before the datagram (onReadable's slots).
  return codecs_[association.upstream].seal(
      upstreams_.server(association.upstream).credentials.master.bytes(),
                     {data - header_size_, header_size_ + n}, out);
}

UdpAssociationTable::Entry* UdpTunnel::addStream(const std::string& key,
                                                 const SocketAddress& from) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
    return nullptr;
  }
  Fd ours(pair[1]);
  worker_.startStream(Fd(pair[0]), uot::magicTarget(2));
  // Connect mode: every datagram goes to -L, so frames carry no address.
  const uot::Request request{.connect = true, .destination = destination_};
  return &table_.addStream(
      key, from, worker_.env().udp_timeout, [&](UdpAssociation& association) {
        return UotChannel::client(
            worker_.loop(), std::move(ours), request,
            [this, &association](const crypto::SocksAddress&, std::span<const uint8_t> payload) {
              if (::sendto(socket_.get(), payload.data(), payload.size(), 0,
                           association.peer.get(), association.peer.len) < 0) {
                ++stats_.dropped_send;
                return;
              }
              ++stats_.packets_out;
              stats_.bytes_out += payload.size();
              table_.touch(association);
            },
            [this, key] { table_.erase(key); });
      });
}

void UdpTunnel::onReply(UdpAssociation& association) {
  const Credentials& creds = upstreams_.server(association.upstream).credentials;
  uint8_t* packet = out_.get();
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    const ssize_t n = ::recv(association.fd.get(), packet, kMaxDatagram, 0);
    if (n < 0) {
      // ICMP port unreachable from the server: as good as a refused connect.
      if (errno == ECONNREFUSED) upstreams_.onConnectFailed(association.upstream);
      return;
    }
    const size_t len = static_cast<size_t>(n);
    std::span<const uint8_t> payload;
    if (Udp2022ClientSession* session = association.client2022.get()) {
      // Opened in place, after the nonce or separate header.
      const size_t at = std::min(session->bodyOffset(), len);
      auto reply = session->open({packet, len}, {packet + at, len - at},
                                 worker_.loop().unixSeconds(), stats_);
      if (!reply) continue;
      payload = reply->payload;
    } else {
      auto reply =
          openReply(codecs_[association.upstream], creds.master.bytes(), packet, len, stats_);
      if (!reply) continue;
      payload = {reply->plain + reply->header, reply->len - reply->header};
    }
    if (::sendto(socket_.get(), payload.data(), payload.size(), 0, association.peer.get(),
                 association.peer.len) < 0) {
      ++stats_.dropped_send;
      continue;
    }
    ++stats_.packets_out;
    stats_.bytes_out += payload.size();
    table_.touch(association);
  }
}

}  // namespace shadowrelay::relay
