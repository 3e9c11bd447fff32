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
      max_associations_(max_associations),
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
      router_(worker.resolver(), worker.env().preference, kMaxPendingResolves,
              &worker.budgets().queueBytes(), &stats_) {}

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

bool Udp2022Server::keyOpener() {
  const UserTablePtr& table = worker_.users().table();
  if (table == nullptr) return false;
  if (table == keyed_table_) return opener_.has_value() && opener_->valid();
  keyed_table_ = table;
  opener_.reset();
  port_user_ = nullptr;
  identity_ = table->identityPort(user_port_);
  if (identity_ != nullptr) {
    // SIP023: the iPSK opens the separate header; the identity header names the user, whose
    // uPSK the opener takes from identity_ (one lookup) to open the body.
    if (identity_->provider() == nullptr) return false;
    opener_.emplace(identity_->method(), *identity_->provider(), identity_->identityKey(),
                    crypto::kClientHeaderType, identity_);
    return opener_->valid();
  }
  const std::span<const RelayUserPtr> users = worker_.users().candidates(user_port_);
  // A 2022 port without identity key has one PSK (config validation and the user registry see
  // to it).
  if (users.size() != 1 || users.front()->method->edition != crypto::Edition::Aead2022) {
    return false;
  }
  port_user_ = users.front();
  opener_.emplace(*port_user_->method, *port_user_->provider, port_user_->key.bytes(),
                  crypto::kClientHeaderType);
  return opener_->valid();
}

RelayUserPtr Udp2022Server::userOf(const crypto::OpenedPacket2022& opened) const {
  if (identity_ == nullptr) return port_user_;
  return opened.user ? identity_->user(*opened.user) : nullptr;
}

void Udp2022Server::onPacket(const SocketAddress& from, const uint8_t* packet, size_t len) {
  if (!keyOpener()) {
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
  if (user->expired) {
    ++worker_.traffic(user->name).refused_expired;  // identified, then refused (as UdpServer)
    return;
  }
  if (user->quota_exceeded) {
    ++stats_.dropped_over_quota;  // identified, then refused (as UdpServer does)
    return;
  }
  UdpAssociation* association = admit(from, user, opened.header);
  if (association == nullptr) return;
  if (!user->live->admitsDatagram(kRateUp, opened.payload.size(),
                                  rateClockNanos(worker_.loop().now()))) {
    ++stats_.dropped_over_rate;  // UDP is not delayed: over the user's rate it is dropped
    return;
  }
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
    // A session belongs to the key that started it: another user of the port (all of them
    // hold the iPSK, so they can read session IDs) must not take it over.
    if (entry->value->user != nullptr && !entry->value->user->sameKey(*user)) {
      ++stats_.dropped_session;
      return nullptr;
    }
    if (!entry->value->server2022->window.accept(header.packet_id)) {
      ++stats_.dropped_replayed_packet;
      return nullptr;
    }
    table_.touch(*entry->value);
  } else {
    const size_t cap = userCap();
    if (cap < max_associations_ && per_user_.of(user->name) >= cap) {
      ++stats_.dropped_user_cap;
      return nullptr;
    }
    std::optional<DeviceLease> device = admitDevice(worker_, *user, from);
    if (!device) return nullptr;
    int family = AF_UNSPEC;
    Fd fd = openRelaySocket(&family);
    if (!fd.valid()) {
      ++stats_.dropped_send;
      return nullptr;
    }
    entry = &table_.add(key, from, std::move(fd), family, idleTimeout(0),
                        [this](UdpAssociation& association) { onReply(association); });
    entry->value->user_slot = per_user_.take(user->name);
    entry->value->device = *std::move(device);
    auto session = std::make_unique<Udp2022ServerSession>();
    session->client_id = header.session_id;
    session->server_id = randomSessionId();
    session->window.accept(header.packet_id);  // a new window takes any ID
    session->sealer.emplace(*user->method, *user->provider,
                            std::span<const crypto::MasterKey>(&user->key, 1));
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
  // Its user as the worker's table has it now (revoke() ends such sessions at a table swap;
  // this holds for a datagram that waited on DNS across one as well).
  const UserTablePtr& table = worker_.users().table();
  if (entry->value->user == nullptr || table == nullptr || !table->keeps(*entry->value->user)) {
    ++stats_.dropped_revoked;
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

size_t Udp2022Server::userCap() const {
  const int configured = worker_.env().config.udp_user_max_associations;
  if (configured > 0) return static_cast<size_t>(configured);
  if (worker_.users().candidates(user_port_).size() <= 1) return max_associations_;
  return std::max<size_t>(1, max_associations_ / 4);
}

void Udp2022Server::revoke(const UserTable& table) {
  table_.eraseIf([&](const UdpAssociation& association) {
    return association.user != nullptr && !table.keeps(*association.user);
  });
}

void Udp2022Server::onReply(UdpAssociation& association) {
  // Replies are sealed with the session's user's key; an association the current table no
  // longer keeps (its user rotated, deleted, disabled; revoke() has not ended it yet) reads and
  // drops them, so that its socket never stays readable.
  Udp2022ServerSession& session = *association.server2022;
  const UserTablePtr& table = worker_.users().table();
  const bool sealable = table != nullptr && association.user != nullptr &&
                        table->keeps(*association.user) && session.sealer.has_value() &&
                        session.sealer->valid();
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
    if (session.sealer->packetSize(header, size) > kMaxUdpPayload) {
      ++stats_.dropped_too_big;  // never fragmented by us
      continue;
    }
    if (!association.user->live->admitsDatagram(kRateDown, size,
                                                rateClockNanos(worker_.loop().now()))) {
      ++stats_.dropped_over_rate;
      continue;
    }
    const size_t sealed =
        session.sealer->seal(header, {reply_.get(), size}, {out_.get(), kMaxDatagram + kSealRoom});
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
