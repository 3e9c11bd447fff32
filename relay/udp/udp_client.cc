// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp_client.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/context/worker_context.h"

namespace shadowrelay::relay {

namespace {
using udp::kMaxDatagram;
using udp::kMaxUdpPayload;
using udp::kPacketsPerEvent;
constexpr size_t kHeaderRoom = 300;  // a domain address header is at most 259 bytes
constexpr size_t kRecvBatch = 16;    // datagrams per recvmmsg
constexpr size_t kSlot = kHeaderRoom + kMaxDatagram + 1;
}  // namespace

UdpTunnel::UdpTunnel(WorkerContext& worker, Fd socket, const SocketAddress& server,
                     const crypto::SocksAddress& destination, size_t max_associations)
    : worker_(worker),
      socket_(std::move(socket)),
      server_(server),
      watcher_(worker.loop(), socket_.get(), kReadable, [this](uint32_t) { onReadable(); }),
      codec_(*worker.env().credentials.method, *worker.env().credentials.provider),
      table_(worker.loop(), max_associations, worker.env().udp_timeout, stats_),
      buf_(std::make_unique_for_overwrite<uint8_t[]>(kRecvBatch * kSlot)),
      out_(std::make_unique_for_overwrite<uint8_t[]>(kHeaderRoom + kMaxDatagram + 128)),
      destination_(destination),
      over_tcp_(worker.env().config.udp_over_tcp) {
  // The destination header is the same for every datagram: write it once, in front of where
  // each datagram is received, in every recvmmsg slot.
  header_size_ = destination.size();
  for (size_t i = 0; i < kRecvBatch; ++i) {
    crypto::writeAddress(destination,
                         {buf_.get() + i * kSlot + kHeaderRoom - header_size_, header_size_});
  }
}

UdpTunnel::~UdpTunnel() = default;

void UdpTunnel::onReadable() {
  // recvmmsg into slots of [room][header][datagram]: the header sits right before the bytes.
  std::array<mmsghdr, kRecvBatch> msgs{};
  std::array<iovec, kRecvBatch> iov{};
  std::array<SocketAddress, kRecvBatch> from;
  for (int received = 0; received < kPacketsPerEvent;) {
    for (size_t i = 0; i < kRecvBatch; ++i) {
      iov[i] = {buf_.get() + i * kSlot + kHeaderRoom, kMaxDatagram};
      msghdr& hdr = msgs[i].msg_hdr;
      hdr.msg_name = from[i].get();
      hdr.msg_namelen = sizeof(from[i].storage);
      hdr.msg_iov = &iov[i];
      hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(socket_.get(), msgs.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;
    for (int i = 0; i < n; ++i) {
      from[i].len = msgs[i].msg_hdr.msg_namelen;
      onDatagram(from[i], buf_.get() + i * kSlot + kHeaderRoom, msgs[i].msg_len);
    }
    if (static_cast<size_t>(n) < kRecvBatch) return;
    received += n;
  }
}

void UdpTunnel::onDatagram(const SocketAddress& from, uint8_t* data, size_t n) {
  const Credentials& creds = worker_.env().credentials;
  uint8_t* plain = data - header_size_;
  const size_t plain_len = header_size_ + n;
  if (plain_len + codec_.overhead() > kMaxUdpPayload) {
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
    if (entry == nullptr) {
      const int fd = connectNonBlockingUdp(server_);
      if (fd < 0) {
        ++stats_.dropped_send;
        return;
      }
      entry = &table_.add(key, from, Fd(fd), server_.family(), worker_.env().udp_timeout,
                          [this](UdpAssociation& association) { onReply(association); });
    }
    const size_t sealed = codec_.seal(creds.master.bytes(), {plain, plain_len},
                                      {out_.get(), kHeaderRoom + kMaxDatagram + 128});
    if (sealed == 0 || ::send(entry->value->fd.get(), out_.get(), sealed, 0) < 0) {
      ++stats_.dropped_send;
      return;
    }
  }
  ++stats_.packets_in;
  stats_.bytes_in += n;
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
  const Credentials& creds = worker_.env().credentials;
  uint8_t* packet = out_.get();
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    const ssize_t n = ::recv(association.fd.get(), packet, kMaxDatagram, 0);
    if (n < 0) return;
    auto reply = openReply(codec_, creds.master.bytes(), packet, static_cast<size_t>(n), stats_);
    if (!reply) continue;
    const size_t payload = reply->len - reply->header;
    if (::sendto(socket_.get(), reply->plain + reply->header, payload, 0,
                 association.peer.get(), association.peer.len) < 0) {
      ++stats_.dropped_send;
      continue;
    }
    ++stats_.packets_out;
    stats_.bytes_out += payload;
    table_.touch(association);
  }
}

}  // namespace shadowrelay::relay
