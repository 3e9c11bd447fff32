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
// The shortest SOCKS5 address header a request can carry: a one-byte name and the port.
constexpr size_t kMinAddressHeader = 1 + 1 + 1 + 2;
constexpr size_t kMaxPeerHints = 65536;
// No AEAD-2017 packet that can open into a request is shorter: the smallest salt (16 bytes,
// aes-128-gcm), the address header and the tag (16). Shorter ones are dropped before any trial.
constexpr size_t kMinPacket = 16 + kMinAddressHeader + 16;

/// An association's table key: the peer's address bytes, a zero byte, then the user's name.
std::string associationKey(const RelayUser& user, const SocketAddress& peer) {
  std::string key = udpPeerKey(peer);
  key.push_back('\0');
  key.append(user.name);
  return key;
}

}  // namespace

UdpServer::UdpServer(WorkerContext& worker, Fd socket, size_t max_associations, uint16_t user_port)
    : worker_(worker),
      socket_(std::move(socket)),
      watcher_(worker.loop(), socket_.get(), kReadable, [this](uint32_t) { onReadable(); }),
      user_port_(user_port),
      max_associations_(max_associations),
      table_(worker.loop(), max_associations,
             std::min<std::chrono::steady_clock::duration>(kDnsIdleTimeout,
                                                           worker.env().udp_timeout),
             stats_),
      buf_(std::make_unique_for_overwrite<uint8_t[]>(kHeaderRoom + kMaxDatagram)),
      out_(std::make_unique_for_overwrite<uint8_t[]>(kMaxDatagram + 128)),
      plain_(std::make_unique_for_overwrite<uint8_t[]>(kMaxDatagram)),
      recv_batch_(udp::recvBatchSize()),
      batch_(std::make_unique_for_overwrite<uint8_t[]>(kRecvBatch * kRecvSlot)),
      router_(worker.resolver(), worker.env().preference, kMaxPendingResolves,
              &worker.budgets().queueBytes(), &stats_) {}

UdpServer::~UdpServer() = default;

void UdpServer::onReadable() {
  receiveDatagrams(
      socket_.get(), batch_.get(), kRecvSlot, 0, recv_batch_,
      [this](const SocketAddress& from, uint8_t* packet, size_t n) { onPacket(from, packet, n); },
      kDatagramsPerEvent);
}

crypto::UdpCodec& UdpServer::codecFor(const RelayUser& user) {
  std::unique_ptr<crypto::UdpCodec>& codec = codecs_[user.method];
  if (codec == nullptr) codec = std::make_unique<crypto::UdpCodec>(*user.method, *user.provider);
  return *codec;
}

RelayUserPtr UdpServer::openPacket(const SocketAddress& from, const std::string& peer,
                                   const uint8_t* packet, size_t len, size_t* plain_len,
                                   Opened* why) {
  *why = Opened::NoKey;
  if (len < kMinPacket) return nullptr;
  auto opens = [&](const RelayUser& user) {
    crypto::UdpCodec& codec = codecFor(user);
    // Too short for the salt, the tag and the shortest address header: no key can open it
    // into a valid request, so it is not worth a trial.
    if (len < codec.overhead() + kMinAddressHeader) return false;
    auto opened = codec.open(user.key.bytes(), {packet, len}, {plain_.get(), kMaxDatagram});
    if (!opened) return false;
    *plain_len = *opened;
    return true;
  };
  const UserTablePtr& table = worker_.users().table();
  if (table == nullptr) return nullptr;
  const std::span<const RelayUserPtr> users = worker_.users().candidates(user_port_);
  if (users.empty()) return nullptr;
  // A port with one user costs one open per datagram, as the hint below does: no budget.
  if (users.size() == 1) return opens(*users.front()) ? users.front() : nullptr;
  // The user this peer spoke last, else the one its IP matched last (its TCP sessions too), from
  // the current table (a user rotated or removed since is not tried): one open, outside the
  // budget, so known clients keep relaying during a flood.
  RelayUserPtr hinted;
  if (auto hint = peer_user_.find(peer); hint != peer_user_.end()) {
    RelayUserPtr user = table->findShared(hint->second);
    if (user != nullptr && user->enabled && user->port == user_port_) hinted = std::move(user);
  }
  if (hinted == nullptr) hinted = worker_.users().hintFor(user_port_, ipKey(from));
  uint64_t failed = 0;
  if (hinted != nullptr) {
    if (opens(*hinted)) {
      if (peer_user_.size() >= kMaxPeerHints) peer_user_.clear();
      peer_user_.insert_or_assign(peer, hinted->name);
      return hinted;
    }
    failed = 1;
  }
  const auto now = std::chrono::steady_clock::now();
  WorkerBudgets& budgets = worker_.budgets();
  WorkerBudgets::Source& source = budgets.source(WorkerBudgets::sourceKey(from), now);
  budgets.chargeTrials(source, failed, now);
  const uint64_t allowed = std::min<uint64_t>(
      static_cast<uint64_t>(worker_.env().config.udp_max_trials),
      budgets.trialsAllowed(source, now));
  if (allowed == 0) {
    *why = Opened::OverBudget;
    return nullptr;
  }
  size_t tried = 0;
  size_t next = 0;
  RelayUserPtr user = worker_.users().matchWindow(user_port_, ipKey(from), source.next_trial,
                                                  allowed, hinted.get(), opens, &tried, &next);
  source.next_trial = next;
  budgets.chargeTrials(source, user != nullptr ? tried - 1 : tried, now);
  if (user == nullptr) return nullptr;
  if (peer_user_.size() >= kMaxPeerHints) peer_user_.clear();
  peer_user_.insert_or_assign(peer, user->name);
  *why = Opened::Yes;
  return user;
}

void UdpServer::onPacket(const SocketAddress& from, uint8_t* packet, size_t len) {
  const std::string peer = udpPeerKey(from);
  size_t opened = 0;
  Opened why = Opened::NoKey;
  const RelayUserPtr user = openPacket(from, peer, packet, len, &opened, &why);
  if (user == nullptr) {
    ++(why == Opened::OverBudget ? stats_.dropped_trial_budget : stats_.dropped_open);
    return;
  }
  if (user->expired) {
    // Identified, then refused like a new TCP session; its associations were dropped at expiry.
    ++worker_.traffic(user->name).refused_expired;
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
  if (!user->live->admitsDatagram(kRateUp, opened - header,
                                  rateClockNanos(worker_.loop().now()))) {
    ++stats_.dropped_over_rate;  // UDP is not delayed: over the user's rate it is dropped
    return;
  }
  router_.route(
      target, std::span<const uint8_t>(plain + header, opened - header),
      [this, from, user](const SocketAddress& to, std::span<const uint8_t> data) {
        forward(from, user, to, data.data(), data.size());
      },
      [this] { ++stats_.dropped_resolve; });
}

size_t UdpServer::userCap() const {
  const int configured = worker_.env().config.udp_user_max_associations;
  if (configured > 0) return static_cast<size_t>(configured);
  if (worker_.users().candidates(user_port_).size() <= 1) return max_associations_;
  return std::max<size_t>(1, max_associations_ / 4);
}

void UdpServer::forward(const SocketAddress& client, const RelayUserPtr& user,
                        const SocketAddress& target, const uint8_t* payload, size_t len) {
  // The user as the worker's table has it now: a datagram that waited on DNS may belong to a
  // user deleted, disabled, rotated or over quota since.
  const UserTablePtr& table = worker_.users().table();
  if (table == nullptr || !table->keeps(*user)) {
    ++stats_.dropped_revoked;
    return;
  }
  if (!worker_.env().targetPolicy().allows(target.get())) {
    ++stats_.dropped_refused;
    return;
  }
  const std::string key = associationKey(*user, client);
  UdpAssociationTable::Entry* entry = table_.find(key);
  if (entry == nullptr) {
    // A cap below the table's size: at it, the user's new association is dropped rather than
    // evicting someone else's. (A cap of the whole table is the table's own LRU bound.)
    const size_t cap = userCap();
    if (cap < max_associations_ && per_user_.of(user->name) >= cap) {
      ++stats_.dropped_user_cap;
      return;
    }
    std::optional<DeviceLease> device = admitDevice(worker_, *user, client);
    if (!device) return;
    int family = AF_UNSPEC;
    Fd fd = openRelaySocket(&family);
    if (!fd.valid()) {
      ++stats_.dropped_send;
      return;
    }
    entry = &table_.add(key, client, std::move(fd), family, worker_.env().udp_timeout,
                        [this](UdpAssociation& association) { onReply(association); });
    entry->value->user_slot = per_user_.take(user->name);
    entry->value->device = *std::move(device);
    entry->value->traffic = &worker_.traffic(user->name);
  }
  entry->idle_timeout = target.port() == 53 ? kDnsIdleTimeout : worker_.env().udp_timeout;
  UdpAssociation& association = *entry->value;
  // The same name and key (the key says so, and keeps() held): the newest copy of the user.
  association.user = user;
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
  // Replies of a user the current table no longer keeps (revoke() has not ended the
  // association yet) are read and dropped, never sealed.
  const UserTablePtr& table = worker_.users().table();
  const bool kept = table != nullptr && table->keeps(user);
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    SocketAddress from;
    from.len = sizeof(from.storage);
    uint8_t* data = buf_.get() + kHeaderRoom;
    const ssize_t n = ::recvfrom(association.fd.get(), data, kMaxDatagram, 0, from.get(),
                                 &from.len);
    if (n < 0) return;
    if (!kept) {
      ++stats_.dropped_revoked;
      continue;
    }
    const crypto::SocksAddress source = socksAddressOf(from);
    const size_t header = source.size();
    uint8_t* plain = data - header;
    crypto::writeAddress(source, {plain, header});
    const size_t plain_len = header + static_cast<size_t>(n);
    if (plain_len + codec.overhead() > kMaxUdpPayload) {
      ++stats_.dropped_too_big;  // never fragmented by us
      continue;
    }
    if (!user.live->admitsDatagram(kRateDown, static_cast<size_t>(n),
                                   rateClockNanos(worker_.loop().now()))) {
      ++stats_.dropped_over_rate;
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
