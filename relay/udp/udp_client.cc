// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp_client.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/tcp/worker.h"

namespace shadowrelay::relay {

namespace {
constexpr size_t kMaxDatagram = 65535;
constexpr size_t kMaxUdpPayload = 65507;
constexpr size_t kHeaderRoom = 300;  // a domain address header is at most 259 bytes
constexpr int kPacketsPerEvent = 64;
constexpr auto kSweepInterval = std::chrono::seconds(1);

std::string keyOf(const SocketAddress& address) {
  return std::string(reinterpret_cast<const char*>(&address.storage), address.len);
}
}  // namespace

struct UdpTunnel::Association {
  SocketAddress sender;
  Fd fd;  // connected to the server
  std::optional<IoWatcher> watcher;
};

UdpTunnel::UdpTunnel(Worker& worker, Fd socket, const SocketAddress& server,
                     const crypto::SocksAddress& destination, size_t max_associations)
    : worker_(worker),
      socket_(std::move(socket)),
      server_(server),
      watcher_(worker.loop(), socket_.get(), kReadable, [this](uint32_t) { onReadable(); }),
      sweep_timer_(worker.loop(), [this] { sweep(); }),
      codec_(*worker.env().credentials.method, *worker.env().credentials.provider),
      table_(max_associations),
      buf_(std::make_unique_for_overwrite<uint8_t[]>(kHeaderRoom + kMaxDatagram)),
      out_(std::make_unique_for_overwrite<uint8_t[]>(kHeaderRoom + kMaxDatagram + 128)) {
  // The destination header is the same for every datagram: write it once, in front of where
  // each datagram is received.
  header_size_ = destination.size();
  crypto::writeAddress(destination, {buf_.get() + kHeaderRoom - header_size_, header_size_});
  sweep_timer_.armAfter(kSweepInterval);
}

UdpTunnel::~UdpTunnel() = default;

void UdpTunnel::sweep() {
  stats_.expirations += table_.expire(Clock::now(), worker_.env().udp_timeout);
  sweep_timer_.armAfter(kSweepInterval);
}

void UdpTunnel::onReadable() {
  const Credentials& creds = worker_.env().credentials;
  // buf_ = [room][header][datagram]: the header sits right before the received bytes.
  uint8_t* data = buf_.get() + kHeaderRoom;
  uint8_t* plain = data - header_size_;
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    SocketAddress from;
    from.len = sizeof(from.storage);
    const ssize_t n = ::recvfrom(socket_.get(), data, kMaxDatagram, 0, from.get(), &from.len);
    if (n < 0) return;
    const size_t plain_len = header_size_ + static_cast<size_t>(n);
    if (plain_len + codec_.overhead() > kMaxUdpPayload) {
      ++stats_.dropped_too_big;
      continue;
    }
    const std::string key = keyOf(from);
    const auto now = Clock::now();
    Table::Entry* entry = table_.touch(key, now);
    if (entry == nullptr) {
      const int fd = connectNonBlockingUdp(server_);
      if (fd < 0) {
        ++stats_.dropped_send;
        continue;
      }
      auto association = std::make_unique<Association>();
      association->sender = from;
      association->fd = Fd(fd);
      Association* raw = association.get();
      association->watcher.emplace(worker_.loop(), fd, kReadable,
                                   [this, raw](uint32_t) { onReply(*raw); });
      const uint64_t evicted_before = table_.evictions();
      entry = &table_.insert(key, std::move(association), now, worker_.env().udp_timeout);
      stats_.evictions += table_.evictions() - evicted_before;
      ++stats_.associations;
    }
    const size_t sealed = codec_.seal(creds.master.bytes(), {plain, plain_len},
                                      {out_.get(), kHeaderRoom + kMaxDatagram + 128});
    if (sealed == 0 || ::send(entry->value->fd.get(), out_.get(), sealed, 0) < 0) {
      ++stats_.dropped_send;
      continue;
    }
    ++stats_.packets_in;
    stats_.bytes_in += static_cast<uint64_t>(n);
  }
}

void UdpTunnel::onReply(Association& association) {
  const Credentials& creds = worker_.env().credentials;
  const size_t salt_size = creds.method->salt_size;
  uint8_t* packet = out_.get();
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    const ssize_t n = ::recv(association.fd.get(), packet, kMaxDatagram, 0);
    if (n < 0) return;
    const size_t len = static_cast<size_t>(n);
    if (len <= codec_.overhead()) {
      ++stats_.dropped_open;
      continue;
    }
    uint8_t* plain = packet + salt_size;
    auto opened = codec_.open(creds.master.bytes(), {packet, len}, {plain, len - salt_size});
    if (!opened) {
      ++stats_.dropped_open;
      continue;
    }
    crypto::SocksAddress source;
    size_t header = 0;
    if (crypto::parseAddress({plain, *opened}, &source, &header) != crypto::AddressParse::Ok) {
      ++stats_.dropped_address;
      continue;
    }
    if (::sendto(socket_.get(), plain + header, *opened - header, 0, association.sender.get(),
                 association.sender.len) < 0) {
      ++stats_.dropped_send;
      continue;
    }
    ++stats_.packets_out;
    stats_.bytes_out += *opened - header;
    table_.touch(keyOf(association.sender), Clock::now());
  }
}

}  // namespace shadowrelay::relay
