// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp2022_server.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "crypto/aead2022.h"
#include "relay/context/worker_context.h"
#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/target_policy.h"
#include "relay/udp/udp2022_session.h"

namespace shadowrelay::relay {

namespace {

using udp::kMaxDatagram;
using udp::kMaxUdpPayload;
using udp::kPacketsPerEvent;
constexpr auto kDnsIdleTimeout = std::chrono::seconds(30);
constexpr size_t kSealRoom = 512;  // a reply's headers and tag around its payload

std::string sessionKey(const crypto::SessionId& id) {
  return std::string(reinterpret_cast<const char*>(id.data()), id.size());
}

}  // namespace

Udp2022Server::Udp2022Server(WorkerContext& worker, Fd socket, size_t max_associations,
                             uint16_t user_port)
    : worker_(worker),
      socket_(std::move(socket)),
      watcher_(worker.loop(), socket_.get(), kReadable, [this](uint32_t) { onReadable(); }),
      user_port_(user_port),
      table_(worker.loop(), max_associations,
             std::max<std::chrono::steady_clock::duration>(
                 kMinSessionLifetime, std::min<std::chrono::steady_clock::duration>(
                                          kDnsIdleTimeout, worker.env().udp_timeout)),
             stats_),
      plain_(std::make_unique_for_overwrite<uint8_t[]>(kMaxDatagram)),
      reply_(std::make_unique_for_overwrite<uint8_t[]>(kMaxDatagram)),
      out_(std::make_unique_for_overwrite<uint8_t[]>(kMaxDatagram + kSealRoom)),
      recv_batch_(udp::recvBatchSize()),
      batch_(std::make_unique_for_overwrite<uint8_t[]>(udp::kRecvBatch * kRecvSlot)),
      router_(worker.resolver(), worker.env().preference, kMaxPendingResolves) {}

Udp2022Server::~Udp2022Server() = default;

std::chrono::steady_clock::duration Udp2022Server::idleTimeout(uint16_t target_port) const {
  // As for 2017 (30 s after a DNS query), but never below the session's minimum lifetime.
  const std::chrono::steady_clock::duration wanted =
      target_port == 53 ? std::chrono::steady_clock::duration(kDnsIdleTimeout)
                        : std::chrono::steady_clock::duration(worker_.env().udp_timeout);
  return std::max<std::chrono::steady_clock::duration>(wanted, kMinSessionLifetime);
}

void Udp2022Server::onReadable() {
  receiveDatagrams(
      socket_.get(), batch_.get(), kRecvSlot, 0, recv_batch_,
      [this](const SocketAddress& from, uint8_t* packet, size_t n) { onPacket(from, packet, n); });
}

const RelayUserPtr& Udp2022Server::portUser() {
  static const RelayUserPtr kNone;
  // Users behind an identity key (SIP023): their packets carry identity headers, which this
  // port does not read yet; their one user alone must not be served without one either.
  const UserTablePtr& table = worker_.users().table();
  if (table != nullptr && table->identityPort(user_port_) != nullptr) return kNone;
  const std::span<const RelayUserPtr> users = worker_.users().candidates(user_port_);
  // A 2022 port has one PSK (config validation and the user registry see to it).
  if (users.size() != 1 || users.front()->method->edition != crypto::Edition::Aead2022) {
    return kNone;
  }
  const RelayUserPtr& user = users.front();
  if (user != port_user_) {  // first packet, or a new table: key the codecs for it
    opener_.emplace(*user->method, *user->provider, user->key.bytes(), crypto::kClientHeaderType);
    sealer_.emplace(*user->method, *user->provider,
                    std::span<const crypto::MasterKey>(&user->key, 1));
    port_user_ = user;
  }
  return port_user_;
}

RelayUserPtr Udp2022Server::userOf(const crypto::OpenedPacket2022& /*opened*/) {
  // SIP023 (identity headers): find `opened.user` (the hash the header named) in the port's
  // users here, instead of the one PSK that keyed the opener.
  return port_user_;
}

void Udp2022Server::onPacket(const SocketAddress& from, const uint8_t* packet, size_t len) {
  if (portUser() == nullptr || !opener_->valid()) {
    ++stats_.dropped_open;
    return;
  }
  const crypto::OpenedPacket2022 opened =
      opener_->open({packet, len}, {plain_.get(), kMaxDatagram}, worker_.loop().unixSeconds());
  if (opened.status != crypto::Status2022::Ok) {
    countDropped2022(opened.status, stats_);
    return;
  }
  const RelayUserPtr user = userOf(opened);
  if (user == nullptr) {
    ++stats_.dropped_open;
    return;
  }
  if (user->quota_exceeded) {
    ++stats_.dropped_over_quota;  // identified, then refused (as UdpServer does)
    return;
  }
  UdpAssociation* association = admit(from, user, opened.header);
  if (association == nullptr) return;
  router_.route(
      opened.header.address, opened.payload,
      [this, key = association->key](const SocketAddress& to, std::span<const uint8_t> data) {
        forward(key, to, data);
      },
      [this] { ++stats_.dropped_resolve; });
}

UdpAssociation* Udp2022Server::admit(const SocketAddress& from, const RelayUserPtr& user,
                                     const crypto::PacketHeader2022& header) {
  const std::string key = sessionKey(header.session_id);
  // Peeked, not touched: a replay must not keep a session alive either.
  UdpAssociationTable::Entry* entry = table_.peek(key);
  if (entry != nullptr) {
    if (!entry->value->server2022->window.accept(header.packet_id)) {
      ++stats_.dropped_replayed_packet;
      return nullptr;
    }
    table_.touch(*entry->value);
  } else {
    int family = AF_UNSPEC;
    Fd fd = openRelaySocket(&family);
    if (!fd.valid()) {
      ++stats_.dropped_send;
      return nullptr;
    }
    entry = &table_.add(key, from, std::move(fd), family, idleTimeout(0),
                        [this](UdpAssociation& association) { onReply(association); });
    auto session = std::make_unique<Udp2022ServerSession>();
    session->client_id = header.session_id;
    session->server_id = randomSessionId();
    session->window.accept(header.packet_id);  // a new window takes any ID
    entry->value->server2022 = std::move(session);
  }
  UdpAssociation& association = *entry->value;
  association.peer = from;  // replies go where the last validated packet came from
  if (association.user != user) {
    association.user = user;
    association.traffic = &worker_.traffic(user->name);
  }
  return &association;
}

void Udp2022Server::forward(const std::string& key, const SocketAddress& target,
                            std::span<const uint8_t> payload) {
  if (!worker_.env().targetPolicy().allows(target.get())) {
    ++stats_.dropped_refused;
    return;
  }
  UdpAssociationTable::Entry* entry = table_.find(key);
  if (entry == nullptr) {  // evicted or revoked while its target resolved
    ++stats_.dropped_send;
    return;
  }
  entry->idle_timeout = idleTimeout(target.port());
  UdpAssociation& association = *entry->value;
  const SocketAddress to = association.family == AF_INET6 ? asV6(target) : target;
  if (::sendto(association.fd.get(), payload.data(), payload.size(), 0, to.get(), to.len) < 0) {
    ++stats_.dropped_send;
    return;
  }
  ++stats_.packets_in;
  stats_.bytes_in += payload.size();
  ++association.traffic->udp_packets_up;
  association.traffic->udp_bytes_up += payload.size();
}

void Udp2022Server::revoke(const UserTable& table) {
  table_.eraseIf([&](const UdpAssociation& association) {
    return association.user != nullptr && !table.keeps(*association.user);
  });
}

void Udp2022Server::onReply(UdpAssociation& association) {
  // Replies are sealed with the port's key; an association of an older key (the table changed
  // and revoke() has not ended it yet) reads and drops them, so that its socket never stays
  // readable.
  const RelayUserPtr& user = portUser();
  const bool sealable = user != nullptr && association.user != nullptr &&
                        user->sameKey(*association.user) && sealer_->valid();
  Udp2022ServerSession& session = *association.server2022;
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    SocketAddress from;
    from.len = sizeof(from.storage);
    const ssize_t n =
        ::recvfrom(association.fd.get(), reply_.get(), kMaxDatagram, 0, from.get(), &from.len);
    if (n < 0) return;
    if (!sealable) {
      ++stats_.dropped_send;
      continue;
    }
    crypto::PacketHeader2022 header;
    header.type = crypto::kServerHeaderType;
    header.session_id = session.server_id;
    header.packet_id = session.next_packet_id;
    header.timestamp = worker_.loop().unixSeconds();
    header.client_session_id = session.client_id;
    header.address = socksAddressOf(from);
    const size_t size = static_cast<size_t>(n);
    if (sealer_->packetSize(header, size) > kMaxUdpPayload) {
      ++stats_.dropped_too_big;  // never fragmented by us
      continue;
    }
    const size_t sealed =
        sealer_->seal(header, {reply_.get(), size}, {out_.get(), kMaxDatagram + kSealRoom});
    if (sealed == 0 || ::sendto(socket_.get(), out_.get(), sealed, 0, association.peer.get(),
                                association.peer.len) < 0) {
      ++stats_.dropped_send;
      continue;
    }
    ++session.next_packet_id;
    ++stats_.packets_out;
    stats_.bytes_out += size;
    ++association.traffic->udp_packets_down;
    association.traffic->udp_bytes_down += size;
    table_.touch(association);
  }
}

}  // namespace shadowrelay::relay
