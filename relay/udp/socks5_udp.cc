// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/socks5_udp.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "relay/event/event_loop.h"
#include "relay/socks5.h"
#include "relay/context/worker_context.h"
#include "relay/upstream/upstream_balancer.h"

namespace shadowrelay::relay {

namespace {
using udp::kMaxUdpPayload;
using udp::kPacketsPerEvent;
constexpr size_t kSocksHeader = 3;  // RSV RSV FRAG in front of the address
}  // namespace

absl::StatusOr<std::unique_ptr<Socks5UdpRelay>> Socks5UdpRelay::open(WorkerContext& worker,
                                                                     const SocketAddress& local,
                                                                     const SocketAddress& client) {
  SocketAddress bind_to = unmapped(local);
  if (bind_to.family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&bind_to.storage)->sin_port = 0;
  } else {
    reinterpret_cast<sockaddr_in6*>(&bind_to.storage)->sin6_port = 0;
  }
  auto fd = bindUdp(bind_to, /*reuse_port=*/false);
  if (!fd.ok()) return fd.status();
  const SocketAddress bound = localAddress(fd->get());
  return std::unique_ptr<Socks5UdpRelay>(
      new Socks5UdpRelay(worker, std::move(*fd), bound, unmapped(client)));
}

Socks5UdpRelay::Socks5UdpRelay(WorkerContext& worker, Fd socket, const SocketAddress& bound,
                               const SocketAddress& client)
    : worker_(worker),
      stats_(worker.udpStats()),
      socket_(std::move(socket)),
      bound_(bound),
      client_(client),
      upstream_(worker.env().upstreams->best(std::hash<std::string>{}(udpPeerKey(client)))),
      codec_(*credentials().method, *credentials().provider),
      last_active_(worker.loop().now()) {
  watcher_.emplace(worker.loop(), socket_.get(), kReadable,
                   [this](uint32_t) { onClientReadable(); });
  const Credentials& creds = credentials();
  if (creds.method->edition == crypto::Edition::Aead2022) {
    // One 2022 client session per association (§2.5).
    session2022_ =
        std::make_unique<Udp2022ClientSession>(*creds.method, *creds.provider,
                                               creds.requestKeys());
  }
  ++stats_.associations;
}

Socks5UdpRelay::~Socks5UdpRelay() {
  stream_.reset();  // closing our end of the pair ends the stream's session
  if (watcher_) watcher_->willCloseFd();
  if (server_watcher_) server_watcher_->willCloseFd();
}

const Credentials& Socks5UdpRelay::credentials() const {
  return worker_.env().upstreams->server(upstream_).credentials;
}

bool Socks5UdpRelay::ensureServerSocket() {
  if (server_socket_.valid()) return true;
  const std::optional<SocketAddress>& server = worker_.env().upstreams->server(upstream_).resolved;
  if (!server) return false;  // resolved at start whenever UDP is relayed
  const int fd = connectNonBlockingUdp(*server);
  if (fd < 0) return false;
  server_socket_ = Fd(fd);
  server_watcher_.emplace(worker_.loop(), fd, kReadable,
                          [this](uint32_t) { onServerReadable(); });
  return true;
}

bool Socks5UdpRelay::ensureStream(const crypto::SocksAddress& first_destination) {
  if (stream_) return true;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
    return false;
  }
  Fd ours(pair[1]);
  worker_.startStream(Fd(pair[0]), uot::magicTarget(2));
  // Non-connect mode: every frame names its destination; the request names the first one
  // (the server uses it for logging only), as sing-box's and mihomo's clients do.
  const uot::Request request{.connect = false, .destination = first_destination};
  stream_ = UotChannel::client(
      worker_.loop(), std::move(ours), request,
      [this](const crypto::SocksAddress& source, std::span<const uint8_t> payload) {
        onStreamDatagram(source, payload);
      },
      [this] { stream_.reset(); });  // the next datagram opens a new stream
  return true;
}

void Socks5UdpRelay::onStreamDatagram(const crypto::SocksAddress& source,
                                      std::span<const uint8_t> payload) {
  uint8_t* out = worker_.scratchOut();
  const size_t address = crypto::writeAddress(source, {out + kSocksHeader, 300});
  if (address == 0 || kSocksHeader + address + payload.size() > WorkerContext::kScratchSize) {
    ++stats_.dropped_address;
    return;
  }
  std::memcpy(out + kSocksHeader + address, payload.data(), payload.size());
  deliver({out, kSocksHeader + address + payload.size()}, payload.size());
}

void Socks5UdpRelay::deliver(std::span<uint8_t> datagram, size_t payload) {
  if (replies_ != nullptr) {
    if (!socks5::frameUdpDatagram(datagram, payload)) {
      ++stats_.dropped_too_big;
      return;
    }
    if (!replies_->onFramedReply(datagram)) return;
    ++stats_.gost_out;
  } else {
    if (peer_.len == 0) return;  // nothing came from the client yet: nowhere to reply
    std::memset(datagram.data(), 0, kSocksHeader);
    if (::sendto(socket_.get(), datagram.data(), datagram.size(), 0, peer_.get(), peer_.len) <
        0) {
      ++stats_.dropped_send;
      return;
    }
  }
  ++stats_.packets_out;
  stats_.bytes_out += payload;
  last_active_ = worker_.loop().now();
}

void Socks5UdpRelay::relayFramed(const socks5::UdpFrame& parsed, std::span<const uint8_t> frame,
                                 FramedReplies& replies) {
  if (replies_ == nullptr) {
    // One way back for every reply: the socket the client stopped using goes.
    watcher_->willCloseFd();
    watcher_.reset();
    socket_ = Fd();
    replies_ = &replies;
  }
  ++stats_.gost_in;
  forward(parsed.address, frame.subspan(kSocksHeader), frame.subspan(parsed.header));
}

void Socks5UdpRelay::onClientReadable() {
  uint8_t* in = worker_.scratchIn();
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    SocketAddress from;
    from.len = sizeof(from.storage);
    const ssize_t n = ::recvfrom(socket_.get(), in, WorkerContext::kScratchSize, 0, from.get(),
                                 &from.len);
    if (n < 0) return;
    if (!sameIp(from, client_)) {
      ++stats_.dropped_foreign;
      continue;
    }
    socks5::UdpHeader header;
    if (socks5::parseUdpHeader({in, static_cast<size_t>(n)}, &header) != socks5::Parse::Ok) {
      ++stats_.dropped_address;
      continue;
    }
    if (header.frag != 0) {
      ++stats_.dropped_fragment;  // RFC 1928 lets a relay without reassembly drop fragments
      continue;
    }
    peer_ = from;
    forward(header.address, {in + kSocksHeader, static_cast<size_t>(n) - kSocksHeader},
            {in + header.size, static_cast<size_t>(n) - header.size});
  }
}

void Socks5UdpRelay::forward(const crypto::SocksAddress& destination,
                             std::span<const uint8_t> plain, std::span<const uint8_t> payload) {
  const size_t packet_size = session2022_ != nullptr
                                 ? session2022_->packetSize(destination, payload.size())
                                 : plain.size() + codec_.overhead();
  if (packet_size > kMaxUdpPayload) {
    ++stats_.dropped_too_big;
    return;
  }
  if (worker_.env().config.udp_over_tcp) {
    if (!ensureStream(destination) || !stream_->send(destination, payload)) {
      ++stats_.dropped_send;
      return;
    }
  } else {
    if (!ensureServerSocket()) {
      ++stats_.dropped_send;
      return;
    }
    uint8_t* out = worker_.scratchOut();
    const std::span<uint8_t> sealed_out(out, WorkerContext::kScratchSize);
    const size_t sealed =
        session2022_ != nullptr
            ? session2022_->seal(destination, payload, sealed_out, worker_.loop().unixSeconds())
            : codec_.seal(credentials().master.bytes(), plain, sealed_out);
    if (sealed == 0 || ::send(server_socket_.get(), out, sealed, 0) < 0) {
      ++stats_.dropped_send;
      return;
    }
  }
  ++stats_.packets_in;
  stats_.bytes_in += payload.size();
  last_active_ = worker_.loop().now();
}

void Socks5UdpRelay::onServerReadable() {
  const Credentials& creds = credentials();
  uint8_t* packet = worker_.scratchIn();
  for (int i = 0; i < kPacketsPerEvent; ++i) {
    const ssize_t n = ::recv(server_socket_.get(), packet, WorkerContext::kScratchSize, 0);
    if (n < 0) {
      // ICMP port unreachable from the server: as good as a refused connect.
      if (errno == ECONNREFUSED) worker_.env().upstreams->onConnectFailed(upstream_);
      return;
    }
    // The reply opened in place: its source address header and payload, with room before them.
    uint8_t* source = nullptr;  // the address header, followed by the payload
    size_t address = 0;
    size_t payload = 0;
    const size_t len = static_cast<size_t>(n);
    if (session2022_ != nullptr) {
      const size_t at = std::min(session2022_->bodyOffset(), len);
      auto reply = session2022_->open({packet, len}, {packet + at, len - at},
                                      worker_.loop().unixSeconds(), stats_);
      if (!reply) continue;
      // The body has at least its type, timestamp, client session ID and padding length before
      // the address: room for RSV RSV FRAG.
      address = reply->address_size;
      payload = reply->payload.size();
      source = packet + (reply->payload.data() - packet) - address;
    } else {
      auto reply = openReply(codec_, creds.master.bytes(), packet, len, stats_);
      if (!reply) continue;
      address = reply->header;
      payload = reply->len - reply->header;
      source = reply->plain;  // after the salt: room for RSV RSV FRAG
    }
    // RSV RSV FRAG go right before the address header, which stays as the server sent it.
    deliver({source - kSocksHeader, kSocksHeader + address + payload}, payload);
  }
}

}  // namespace shadowrelay::relay
