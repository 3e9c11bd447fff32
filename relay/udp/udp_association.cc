// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp_association.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "relay/context/worker_context.h"
#include "relay/event/event_loop.h"

namespace shadowrelay::relay {

namespace {
constexpr auto kSweepInterval = std::chrono::seconds(1);
}  // namespace

std::optional<DeviceLease> admitDevice(WorkerContext& worker, const RelayUser& user,
                                       const SocketAddress& peer) {
  std::optional<DeviceLease> lease = user.admitDevice(sourceKey(peer));
  if (!lease) ++worker.traffic(user.name).refused_over_devices;
  return lease;
}

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

namespace udp {
size_t recvBatchSize() {
  const char* value = std::getenv("SHADOWRELAY_UDP_RECV_BATCH");
  const long n = value != nullptr ? std::strtol(value, nullptr, 10) : 0;
  return n >= 1 && n <= static_cast<long>(kRecvBatch) ? static_cast<size_t>(n) : kRecvBatch;
}
}  // namespace udp

UserAssociationCount::Slot& UserAssociationCount::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = other.owner_;
    name_ = std::move(other.name_);
    other.owner_ = nullptr;
  }
  return *this;
}

void UserAssociationCount::Slot::release() {
  if (owner_ == nullptr) return;
  auto it = owner_->counts_.find(name_);
  if (it != owner_->counts_.end() && --it->second == 0) owner_->counts_.erase(it);
  owner_ = nullptr;
}

void receiveDatagrams(int fd, uint8_t* slots, size_t slot_size, size_t offset, size_t batch,
                      absl::FunctionRef<void(const SocketAddress& from, uint8_t* data, size_t n)>
                          on_datagram,
                      int max_datagrams) {
  // Each slot can take the largest datagram; only the pages a datagram touches become resident.
  batch = std::min(batch, udp::kRecvBatch);
  std::array<mmsghdr, udp::kRecvBatch> msgs{};
  std::array<iovec, udp::kRecvBatch> iov{};
  std::array<SocketAddress, udp::kRecvBatch> from;
  max_datagrams = std::min(max_datagrams, udp::kPacketsPerEvent);
  for (int received = 0; received < max_datagrams;) {
    batch = std::min(batch, static_cast<size_t>(max_datagrams - received));
    for (size_t i = 0; i < batch; ++i) {
      iov[i] = {slots + i * slot_size + offset, udp::kMaxDatagram};
      msghdr& hdr = msgs[i].msg_hdr;
      hdr.msg_name = from[i].get();
      hdr.msg_namelen = sizeof(from[i].storage);
      hdr.msg_iov = &iov[i];
      hdr.msg_iovlen = 1;
    }
    const int n = ::recvmmsg(fd, msgs.data(), batch, MSG_DONTWAIT, nullptr);
    if (n <= 0) return;  // EAGAIN, or an ICMP error reported on the socket: nothing to do
    for (int i = 0; i < n; ++i) {
      from[i].len = msgs[i].msg_hdr.msg_namelen;
      on_datagram(from[i], slots + i * slot_size + offset, msgs[i].msg_len);
    }
    if (static_cast<size_t>(n) < batch) return;
    received += n;
  }
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
