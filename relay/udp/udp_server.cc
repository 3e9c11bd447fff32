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

constexpr size_t kMaxDatagram = 65535;
constexpr size_t kMaxUdpPayload = 65507;  // IPv4: 65535 - 20 (IP) - 8 (UDP)
constexpr size_t kHeaderRoom = 32;        // an IPv6 address header is 19 bytes
constexpr int kPacketsPerEvent = 64;
constexpr auto kDnsIdleTimeout = std::chrono::seconds(30);
constexpr auto kSweepInterval = std::chrono::seconds(1);

std::string keyOf(const SocketAddress& address) {
  return std::string(reinterpret_cast<const char*>(&address.storage), address.len);
}

/// `address` as a destination for an AF_INET6 dual-stack socket (IPv4 becomes ::ffff:a.b.c.d).
SocketAddress asV6(const SocketAddress& address) {
  if (address.family() != AF_INET) return address;
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.storage);
  SocketAddress out;
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  v6->sin6_family = AF_INET6;
  v6->sin6_port = v4->sin_port;
  v6->sin6_addr.s6_addr[10] = 0xff;
  v6->sin6_addr.s6_addr[11] = 0xff;
  std::memcpy(&v6->sin6_addr.s6_addr[12], &v4->sin_addr, 4);
  out.len = sizeof(sockaddr_in6);
  return out;
}

/// The address header of a reply's source (an IPv4-mapped source is written as IPv4).
crypto::SocksAddress sourceHeader(const sockaddr_storage& from) {
  if (from.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&from);
    std::array<uint8_t, 4> ip{};
    std::memcpy(ip.data(), &v4->sin_addr, 4);
    return crypto::SocksAddress::ipv4(ip, ntohs(v4->sin_port));
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&from);
  if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
    std::array<uint8_t, 4> ip{};
    std::memcpy(ip.data(), &v6->sin6_addr.s6_addr[12], 4);
    return crypto::SocksAddress::ipv4(ip, ntohs(v6->sin6_port));
  }
  std::array<uint8_t, 16> ip{};
  std::memcpy(ip.data(), &v6->sin6_addr, 16);
  return crypto::SocksAddress::ipv6(ip, ntohs(v6->sin6_port));
}

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
                      " bytes_in=", bytes_in, " bytes_out=", bytes_out, " dropped{open=", dropped_open,
                      " replay=", dropped_replay, " address=", dropped_address,
                      " refused=", dropped_refused, " resolve=", dropped_resolve,
                      " send=", dropped_send, " too_big=", dropped_too_big,
                      "} associations=", associations, " evictions=", evictions,
                      " expirations=", expirations);
}

struct UdpServer::Association {
  SocketAddress client;
  Fd fd;
  std::optional<IoWatcher> watcher;
};

struct UdpServer::PendingResolve {
  dns::ResolveHandle handle;
};

UdpServer::UdpServer(Worker& worker, Fd socket, size_t max_associations)
    : worker_(worker),
      socket_(std::move(socket)),
      watcher_(worker.loop(), socket_.get(), kReadable, [this](uint32_t) { onReadable(); }),
      sweep_timer_(worker.loop(), [this] { sweep(); }),
      codec_(*worker.env().credentials.method, *worker.env().credentials.provider),
      table_(max_associations),
      buf_(std::make_unique_for_overwrite<uint8_t[]>(kHeaderRoom + kMaxDatagram)),
      out_(std::make_unique_for_overwrite<uint8_t[]>(kMaxDatagram + 128)) {
  sweep_timer_.armAfter(kSweepInterval);
}

UdpServer::~UdpServer() = default;

void UdpServer::sweep() {
  stats_.expirations += table_.expire(
      Clock::now(), std::min<Clock::duration>(kDnsIdleTimeout, worker_.env().udp_timeout));
  sweep_timer_.armAfter(kSweepInterval);
}

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
  const std::string key = keyOf(from);
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
  const auto now = Clock::now();
  Table::Entry* entry = table_.touch(key, now);
  if (entry == nullptr) {
    auto association = std::make_unique<Association>();
    association->client = client;
    int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
      int off = 0;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    } else {
      fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
      ++stats_.dropped_send;
      return;
    }
    association->fd = Fd(fd);
    Association* raw = association.get();
    association->watcher.emplace(worker_.loop(), fd, kReadable,
                                 [this, raw](uint32_t) { onReply(*raw); });
    const uint64_t evicted_before = table_.evictions();
    entry = &table_.insert(key, std::move(association), now, worker_.env().udp_timeout);
    stats_.evictions += table_.evictions() - evicted_before;
    ++stats_.associations;
  }
  entry->idle_timeout = target.port() == 53 ? kDnsIdleTimeout : worker_.env().udp_timeout;
  Association& association = *entry->value;
  SocketAddress to = target;
  const bool v6_socket = localAddress(association.fd.get()).family() == AF_INET6;
  if (v6_socket) to = asV6(target);
  if (::sendto(association.fd.get(), payload, len, 0, to.get(), to.len) < 0) {
    ++stats_.dropped_send;
    return;
  }
  ++stats_.packets_in;
  stats_.bytes_in += len;
}

void UdpServer::onReply(Association& association) {
  const Credentials& creds = worker_.env().credentials;
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    sockaddr_storage from{};
    socklen_t from_len = sizeof(from);
    uint8_t* data = buf_.get() + kHeaderRoom;
    const ssize_t n = ::recvfrom(association.fd.get(), data, kMaxDatagram, 0,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) return;
    const crypto::SocksAddress source = sourceHeader(from);
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
    if (sealed == 0 || ::sendto(socket_.get(), out_.get(), sealed, 0, association.client.get(),
                                association.client.len) < 0) {
      ++stats_.dropped_send;
      continue;
    }
    ++stats_.packets_out;
    stats_.bytes_out += static_cast<uint64_t>(n);
    table_.touch(keyOf(association.client), Clock::now());
  }
}

}  // namespace shadowrelay::relay
