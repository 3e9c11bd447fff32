// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp_association.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "relay/event/event_loop.h"

namespace shadowrelay::relay {

namespace {
constexpr auto kSweepInterval = std::chrono::seconds(1);
}  // namespace

std::string udpPeerKey(const SocketAddress& address) {
  return std::string(reinterpret_cast<const char*>(&address.storage), address.len);
}

std::optional<OpenedReply> openReply(crypto::UdpCodec& codec, std::span<const uint8_t> master,
                                     uint8_t* packet, size_t len, UdpStats& stats) {
  if (len <= codec.overhead()) {
    ++stats.dropped_open;
    return std::nullopt;
  }
  const size_t salt_size = codec.method().salt_size;
  OpenedReply reply;
  reply.plain = packet + salt_size;
  auto opened = codec.open(master, {packet, len}, {reply.plain, len - salt_size});
  if (!opened) {
    ++stats.dropped_open;
    return std::nullopt;
  }
  reply.len = *opened;
  crypto::SocksAddress source;
  if (crypto::parseAddress({reply.plain, reply.len}, &source, &reply.header) !=
      crypto::AddressParse::Ok) {
    ++stats.dropped_address;
    return std::nullopt;
  }
  return reply;
}

Fd openRelaySocket(int* family) {
  int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    int off = 0;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    *family = AF_INET6;
    return Fd(fd);
  }
  *family = AF_INET;
  return Fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

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

SocketAddress unmapped(const SocketAddress& address) {
  if (address.family() != AF_INET6) return address;
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
  if (!IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return address;
  SocketAddress out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  v4->sin_family = AF_INET;
  v4->sin_port = v6->sin6_port;
  std::memcpy(&v4->sin_addr, &v6->sin6_addr.s6_addr[12], 4);
  out.len = sizeof(sockaddr_in);
  return out;
}

bool sameIp(const SocketAddress& a, const SocketAddress& b) {
  const SocketAddress x = unmapped(a);
  const SocketAddress y = unmapped(b);
  if (x.family() != y.family()) return false;
  if (x.family() == AF_INET) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in*>(&x.storage)->sin_addr,
                       &reinterpret_cast<const sockaddr_in*>(&y.storage)->sin_addr, 4) == 0;
  }
  if (x.family() == AF_INET6) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(&x.storage)->sin6_addr,
                       &reinterpret_cast<const sockaddr_in6*>(&y.storage)->sin6_addr, 16) == 0;
  }
  return false;
}

crypto::SocksAddress socksAddressOf(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    std::array<uint8_t, 4> ip{};
    std::memcpy(ip.data(), &v4->sin_addr, 4);
    return crypto::SocksAddress::ipv4(ip, ntohs(v4->sin_port));
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
  if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
    std::array<uint8_t, 4> ip{};
    std::memcpy(ip.data(), &v6->sin6_addr.s6_addr[12], 4);
    return crypto::SocksAddress::ipv4(ip, ntohs(v6->sin6_port));
  }
  std::array<uint8_t, 16> ip{};
  std::memcpy(ip.data(), &v6->sin6_addr, 16);
  return crypto::SocksAddress::ipv6(ip, ntohs(v6->sin6_port));
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
  return insert(std::move(key), std::move(association), idle_timeout);
}

UdpAssociationTable::Entry& UdpAssociationTable::addStream(
    std::string key, const SocketAddress& peer, Clock::duration idle_timeout,
    const std::function<std::unique_ptr<UotChannel>(UdpAssociation&)>& make_channel) {
  auto association = std::make_unique<UdpAssociation>();
  association->key = key;
  association->peer = peer;
  association->uot = make_channel(*association);
  return insert(std::move(key), std::move(association), idle_timeout);
}

UdpAssociationTable::Entry& UdpAssociationTable::insert(
    std::string key, std::unique_ptr<UdpAssociation> association, Clock::duration idle_timeout) {
  const uint64_t evicted_before = table_.evictions();
  Entry& entry = table_.insert(std::move(key), std::move(association), Clock::now(), idle_timeout);
  stats_.evictions += table_.evictions() - evicted_before;
  ++stats_.associations;
  return entry;
}

void UdpAssociationTable::eraseIf(const std::function<bool(const UdpAssociation&)>& pred) {
  std::vector<std::string> doomed;
  table_.forEachOldestFirst([&](const Entry& entry) {
    if (pred(*entry.value)) doomed.push_back(entry.key);
  });
  for (const std::string& key : doomed) table_.erase(key);
}

}  // namespace shadowrelay::relay
