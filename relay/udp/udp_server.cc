// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp_server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "dns/ip_address.h"
#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/target_policy.h"
#include "relay/context/worker_context.h"

namespace shadowrelay::relay {

namespace {

using udp::kMaxDatagram;
using udp::kMaxUdpPayload;
using udp::kPacketsPerEvent;
constexpr size_t kHeaderRoom = 32;

constexpr auto kDnsIdleTimeout = std::chrono::seconds(30);

}  // namespace

UdpServer::UdpServer(WorkerContext& worker, Fd socket, size_t max_associations, uint16_t user_port)
    : worker_(worker),
      socket_(std::move(socket)),
      watcher_(worker.loop(), socket_.get(), kReadable, [this](uint32_t) { onReadable(); }),
      user_port_(user_port),
      table_(worker.loop(), max_associations,
             std::min<std::chrono::steady_clock::duration>(kDnsIdleTimeout,
                                                           worker.env().udp_timeout),
             stats_),
      buf_(std::make_unique_for_overwrite<uint8_t[]>(kHeaderRoom + kMaxDatagram)),
      out_(std::make_unique_for_overwrite<uint8_t[]>(kMaxDatagram + 128)),
      plain_(std::make_unique_for_overwrite<uint8_t[]>(kMaxDatagram)),
      recv_batch_(udp::recvBatchSize()),
      batch_(std::make_unique_for_overwrite<uint8_t[]>(kRecvBatch * kRecvSlot)),
      router_(worker.resolver(), worker.env().preference, kMaxPendingResolves) {}

UdpServer::~UdpServer() = default;

void UdpServer::onReadable() {
  receiveDatagrams(socket_.get(), batch_.get(), kRecvSlot, 0, recv_batch_,
                   [this](const SocketAddress& from, uint8_t* packet, size_t n) {
                     onPacket(from, packet, n);
                   });
}

crypto::UdpCodec& UdpServer::codecFor(const RelayUser& user) {
  std::unique_ptr<crypto::UdpCodec>& codec = codecs_[user.method];
  if (codec == nullptr) codec = std::make_unique<crypto::UdpCodec>(*user.method, *user.provider);
  return *codec;
}

RelayUserPtr UdpServer::openPacket(const SocketAddress& from, const std::string& key,
                                   const uint8_t* packet, size_t len, size_t* plain_len) {
  auto opens = [&](const RelayUser& user) {
    crypto::UdpCodec& codec = codecFor(user);
    if (len <= codec.overhead()) return false;
    auto opened = codec.open(user.key.bytes(), {packet, len}, {plain_.get(), kMaxDatagram});
    if (!opened) return false;
    *plain_len = *opened;
    return true;
  };
  // A known peer speaks its association's key (one open, no trials).
  if (const UdpAssociationTable::Entry* entry = table_.peek(key)) {
    const RelayUserPtr& user = entry->value->user;
    if (user != nullptr && opens(*user)) return user;
  }
  const std::span<const RelayUserPtr> users = worker_.users().candidates(user_port_);
  if (users.size() == 1) return opens(*users.front()) ? users.front() : nullptr;
  return worker_.users().match(user_port_, ipKey(from), opens);
}

void UdpServer::onPacket(const SocketAddress& from, uint8_t* packet, size_t len) {
  const std::string key = udpPeerKey(from);
  size_t opened = 0;
  const RelayUserPtr user = openPacket(from, key, packet, len, &opened);
  if (user == nullptr) {
    ++stats_.dropped_open;
    return;
  }
  if (user->quota_exceeded) {
    // Over its data quota: identified, then refused, like a new TCP session
    // (ServerSession::admit). Its associations were dropped when the quota was reached.
    ++stats_.dropped_over_quota;
    return;
  }
  const size_t salt_size = user->method->salt_size;
  if (!worker_.env().udp_salt_filter->checkAndInsert({packet, salt_size})) {
    ++stats_.dropped_replay;
    return;
  }
  uint8_t* plain = plain_.get();
  crypto::SocksAddress target;
  size_t header = 0;
  if (crypto::parseAddress({plain, opened}, &target, &header) != crypto::AddressParse::Ok) {
    ++stats_.dropped_address;
    return;
  }
  const std::span<const uint8_t> payload(plain + header, opened - header);
  SocketAddress to;
  switch (router_.lookup(target, &to)) {
    case DatagramRouter::Lookup::Now:
      forward(key, from, user, to, payload.data(), payload.size());
      return;
    case DatagramRouter::Lookup::Failed:
      ++stats_.dropped_resolve;
      return;
    case DatagramRouter::Lookup::NeedQuery:
      break;
  }
  const bool queued = router_.queue(
      target, payload,
      [this, key, from, user](const SocketAddress& resolved, std::span<const uint8_t> data) {
        forward(key, from, user, resolved, data.data(), data.size());
      },
      [this] { ++stats_.dropped_resolve; });
  if (!queued) ++stats_.dropped_resolve;
}

void UdpServer::forward(const std::string& key, const SocketAddress& client,
                        const RelayUserPtr& user, const SocketAddress& target,
                        const uint8_t* payload, size_t len) {
  if (!worker_.env().config.allow_private && !isPublicUnicast(target.get())) {
    ++stats_.dropped_refused;
    return;
  }
  UdpAssociationTable::Entry* entry = table_.find(key);
  if (entry == nullptr) {
    int family = AF_UNSPEC;
    Fd fd = openRelaySocket(&family);
    if (!fd.valid()) {
      ++stats_.dropped_send;
      return;
    }
    entry = &table_.add(key, client, std::move(fd), family, worker_.env().udp_timeout,
                        [this](UdpAssociation& association) { onReply(association); });
  }
  entry->idle_timeout = target.port() == 53 ? kDnsIdleTimeout : worker_.env().udp_timeout;
  UdpAssociation& association = *entry->value;
  if (association.user != user) {
    association.user = user;  // replies are sealed with the key the peer spoke last
    association.traffic = &worker_.traffic(user->name);
  }
  const SocketAddress to = association.family == AF_INET6 ? asV6(target) : target;
  if (::sendto(association.fd.get(), payload, len, 0, to.get(), to.len) < 0) {
    ++stats_.dropped_send;
    return;
  }
  ++stats_.packets_in;
  stats_.bytes_in += len;
  ++association.traffic->udp_packets_up;
  association.traffic->udp_bytes_up += len;
}

void UdpServer::revoke(const UserTable& table) {
  table_.eraseIf([&](const UdpAssociation& association) {
    return association.user != nullptr && !table.keeps(*association.user);
  });
}

void UdpServer::onReply(UdpAssociation& association) {
  if (association.user == nullptr) return;
  const RelayUser& user = *association.user;
  crypto::UdpCodec& codec = codecFor(user);
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    SocketAddress from;
    from.len = sizeof(from.storage);
    uint8_t* data = buf_.get() + kHeaderRoom;
    const ssize_t n = ::recvfrom(association.fd.get(), data, kMaxDatagram, 0, from.get(),
                                 &from.len);
    if (n < 0) return;
    const crypto::SocksAddress source = socksAddressOf(from);
    const size_t header = source.size();
    uint8_t* plain = data - header;
    crypto::writeAddress(source, {plain, header});
    const size_t plain_len = header + static_cast<size_t>(n);
    if (plain_len + codec.overhead() > kMaxUdpPayload) {
      ++stats_.dropped_too_big;  // never fragmented by us
      continue;
    }
    const size_t sealed =
        codec.seal(user.key.bytes(), {plain, plain_len}, {out_.get(), kMaxDatagram + 128});
    if (sealed == 0 || ::sendto(socket_.get(), out_.get(), sealed, 0, association.peer.get(),
                                association.peer.len) < 0) {
      ++stats_.dropped_send;
      continue;
    }
    ++stats_.packets_out;
    stats_.bytes_out += static_cast<uint64_t>(n);
    ++association.traffic->udp_packets_down;
    association.traffic->udp_bytes_down += static_cast<uint64_t>(n);
    table_.touch(association);
  }
}

}  // namespace shadowrelay::relay
