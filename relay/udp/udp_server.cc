// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp_server.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>

#include "absl/strings/str_cat.h"
#include "dns/ip_address.h"
#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/target_policy.h"
#include "relay/tcp/worker.h"

namespace shadowrelay::relay {

namespace {

using udp::kMaxDatagram;
using udp::kMaxUdpPayload;
using udp::kPacketsPerEvent;
constexpr size_t kHeaderRoom = 32;  // an IPv6 address header is 19 bytes
constexpr auto kDnsIdleTimeout = std::chrono::seconds(30);

}  // namespace

struct UdpServer::PendingResolve {
  dns::ResolveHandle handle;
};

UdpServer::UdpServer(Worker& worker, Fd socket, size_t max_associations)
    : worker_(worker),
      socket_(std::move(socket)),
      watcher_(worker.loop(), socket_.get(), kReadable, [this](uint32_t) { onReadable(); }),
      codec_(*worker.env().credentials.method, *worker.env().credentials.provider),
      table_(worker.loop(), max_associations,
             std::min<std::chrono::steady_clock::duration>(kDnsIdleTimeout,
                                                           worker.env().udp_timeout),
             stats_),
      buf_(std::make_unique_for_overwrite<uint8_t[]>(kHeaderRoom + kMaxDatagram)),
      out_(std::make_unique_for_overwrite<uint8_t[]>(kMaxDatagram + 128)) {}

UdpServer::~UdpServer() = default;

void UdpServer::onReadable() {
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    SocketAddress from;
    from.len = sizeof(from.storage);
    const ssize_t n = ::recvfrom(socket_.get(), buf_.get(), kMaxDatagram, 0, from.get(), &from.len);
    if (n < 0) return;  // EAGAIN, or an ICMP error reported on the socket: nothing to do
    onPacket(from, buf_.get(), static_cast<size_t>(n));
  }
}

void UdpServer::onPacket(const SocketAddress& from, uint8_t* packet, size_t len) {
  const Credentials& creds = worker_.env().credentials;
  const size_t salt_size = creds.method->salt_size;
  if (len <= codec_.overhead()) {
    ++stats_.dropped_open;
    return;
  }
  uint8_t* plain = packet + salt_size;  // opened in place
  auto opened = codec_.open(creds.master.bytes(), {packet, len}, {plain, len - salt_size});
  if (!opened) {
    ++stats_.dropped_open;
    return;
  }
  if (!worker_.env().salt_filter->checkAndInsert({packet, salt_size})) {
    ++stats_.dropped_replay;
    return;
  }
  crypto::SocksAddress target;
  size_t header = 0;
  if (crypto::parseAddress({plain, *opened}, &target, &header) != crypto::AddressParse::Ok) {
    ++stats_.dropped_address;
    return;
  }
  const uint8_t* payload = plain + header;
  const size_t payload_len = *opened - header;
  const std::string key = udpPeerKey(from);
  if (target.type != crypto::SocksAddress::Type::Domain) {
    SocketAddress to;
    auto ip = target.type == crypto::SocksAddress::Type::IPv4
                  ? dns::IpAddress::v4({target.ip[0], target.ip[1], target.ip[2], target.ip[3]})
                  : dns::IpAddress::v6(target.ip);
    to.len = ip.toSockaddr(target.port, &to.storage);
    forward(key, from, to, payload, payload_len);
    return;
  }
  if (auto cached = worker_.resolver().resolveCached(target.host, worker_.env().preference)) {
    if (!cached->ok()) {
      ++stats_.dropped_resolve;
      return;
    }
    SocketAddress to;
    to.len = cached->addresses.front().toSockaddr(target.port, &to.storage);
    forward(key, from, to, payload, payload_len);
    return;
  }
  if (pending_.size() >= kMaxPendingResolves) {
    ++stats_.dropped_resolve;
    return;
  }
  // Not cached: keep a copy of the datagram until the name resolves.
  auto it = pending_.emplace(pending_.end());
  std::string data(reinterpret_cast<const char*>(payload), payload_len);
  const uint16_t port = target.port;
  it->handle = worker_.resolver().resolve(
      target.host, worker_.env().preference,
      [this, it, key, from, port, data = std::move(data)](dns::ResolveResult result) {
        if (result.ok()) {
          SocketAddress to;
          to.len = result.addresses.front().toSockaddr(port, &to.storage);
          forward(key, from, to, reinterpret_cast<const uint8_t*>(data.data()), data.size());
        } else {
          ++stats_.dropped_resolve;
        }
        pending_.erase(it);
      });
}

void UdpServer::forward(const std::string& key, const SocketAddress& client,
                        const SocketAddress& target, const uint8_t* payload, size_t len) {
  if (!worker_.env().config.allow_private && !isPublicUnicast(target.get())) {
    ++stats_.dropped_refused;
    return;
  }
  UdpAssociationTable::Entry* entry = table_.find(key);
  if (entry == nullptr) {
    // One dual-stack socket reaches IPv4 and IPv6 targets; IPv4-only hosts get an AF_INET one.
    int family = AF_INET6;
    int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      int off = 0;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    } else {
      family = AF_INET;
      fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
      ++stats_.dropped_send;
      return;
    }
    entry = &table_.add(key, client, Fd(fd), family, worker_.env().udp_timeout,
                        [this](UdpAssociation& association) { onReply(association); });
  }
  entry->idle_timeout = target.port() == 53 ? kDnsIdleTimeout : worker_.env().udp_timeout;
  UdpAssociation& association = *entry->value;
  const SocketAddress to = association.family == AF_INET6 ? asV6(target) : target;
  if (::sendto(association.fd.get(), payload, len, 0, to.get(), to.len) < 0) {
    ++stats_.dropped_send;
    return;
  }
  ++stats_.packets_in;
  stats_.bytes_in += len;
}

void UdpServer::onReply(UdpAssociation& association) {
  const Credentials& creds = worker_.env().credentials;
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    sockaddr_storage from{};
    socklen_t from_len = sizeof(from);
    uint8_t* data = buf_.get() + kHeaderRoom;
    const ssize_t n = ::recvfrom(association.fd.get(), data, kMaxDatagram, 0,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) return;
    const crypto::SocksAddress source = socksAddressOf(from);
    const size_t header = source.size();
    uint8_t* plain = data - header;
    crypto::writeAddress(source, {plain, header});
    const size_t plain_len = header + static_cast<size_t>(n);
    if (plain_len + codec_.overhead() > kMaxUdpPayload) {
      ++stats_.dropped_too_big;  // never fragmented by us
      continue;
    }
    const size_t sealed =
        codec_.seal(creds.master.bytes(), {plain, plain_len}, {out_.get(), kMaxDatagram + 128});
    if (sealed == 0 || ::sendto(socket_.get(), out_.get(), sealed, 0, association.peer.get(),
                                association.peer.len) < 0) {
      ++stats_.dropped_send;
      continue;
    }
    ++stats_.packets_out;
    stats_.bytes_out += static_cast<uint64_t>(n);
    table_.touch(association);
  }
}

}  // namespace shadowrelay::relay
