// SPDX-License-Identifier: Apache-2.0
#include "relay/tcp/client_session.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "dns/ip_address.h"
#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/net/endpoint.h"
#include "relay/socks5.h"
#include "relay/tcp/session_host.h"

namespace shadowrelay::relay {

namespace {

// The SOCKS5 messages of a well-behaved client are far smaller; more is not SOCKS5.
constexpr size_t kMaxSocksBytes = 1024;
// First data bundled with the address header: one full chunk.
constexpr size_t kMaxEarlyData = crypto::kMaxChunkPayload;

}  // namespace

ClientSession::ClientSession(SessionHost& host, Fd client, Front front,
                             std::optional<crypto::SocksAddress> target)
    : TcpSession(host, std::move(client)),
      front_(front),
      state_(front == Front::Socks5 ? State::Greeting : State::Connecting) {
  if (target) {
    target_ = std::move(*target);
    fixed_target_ = true;
  }
}

void ClientSession::start() {
  watch(kClient, kReadable);
  if (front_ == Front::Tunnel) {
    if (!fixed_target_) target_ = *host_.env().tunnel_target;
    beginConnect();
  } else {
    timer_.armAt(accepted_at_ + host_.env().handshake_timeout);
  }
}

void ClientSession::onHandshakeEvent(Side side, uint32_t events) {
  if (side != kClient) return;
  if (state_ == State::UdpAssociated) {
    onControlEvent(events);
    return;
  }
  readClient();
}

void ClientSession::onHandshakeTimer() {
  if (state_ == State::WaitingData) {
    sendFirst();
  } else if (state_ == State::UdpAssociated) {
    // The association ends after --udp-timeout without a datagram either way.
    const TimePoint due = udp_->lastActive() + host_.env().udp_timeout;
    if (host_.loop().now() >= due) {
      close(CloseReason::IdleTimeout);
    } else {
      timer_.armAt(due);
    }
  } else {
    close(CloseReason::HandshakeTimeout);
  }
}

void ClientSession::readClient() {
  const bool socks = state_ == State::Greeting || state_ == State::Request;
  const size_t limit = socks ? kMaxSocksBytes : kMaxEarlyData;
  if (early_.size() >= limit) {
    if (socks) {
      SR_LOG(Warn, "session %d: SOCKS5 message too long; closing", id());
      close(CloseReason::SocksError);
    } else {
      watch(kClient, 0);  // enough first data; the rest waits in the kernel
    }
    return;
  }
  queueClientRead(limit - early_.size());
}

void ClientSession::onClientRead(uint8_t* data, size_t have, long n) {
  if (state_ == State::UdpAssociated) {
    onControlRead(data + have, n);
    return;
  }
  const bool socks = state_ == State::Greeting || state_ == State::Request;
  if (n < 0) {
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) return;
    close(CloseReason::ClientClosed);
    return;
  }
  if (n == 0) {
    if (socks) {
      close(CloseReason::ClientClosed);
      return;
    }
    client_eof_ = true;
    watch(kClient, 0);
    if (connected_) sendFirst();
    return;
  }
  countIn(kClient, static_cast<size_t>(n));
  early_.append(data + have, static_cast<size_t>(n));
  if (socks) {
    advanceSocks();
  } else if (state_ == State::WaitingData) {
    sendFirst();
  }
}

bool ClientSession::advanceSocks() {
  if (state_ == State::Greeting) {
    socks5::Greeting greeting;
    switch (socks5::parseGreeting(early_.span(), &greeting)) {
      case socks5::Parse::NeedMore:
        return true;
      case socks5::Parse::Invalid:
        SR_LOG(Warn, "session %d: malformed SOCKS5 greeting (first byte 0x%02x); closing", id(),
               early_.data()[0]);
        close(CloseReason::SocksError);
        return false;
      case socks5::Parse::Ok:
        break;
    }
    early_.consume(greeting.size);
    const uint8_t method = greeting.offers_no_auth ? socks5::kMethodNoAuth
                                                   : socks5::kMethodNoAcceptable;
    const uint8_t choice[2] = {socks5::kVersion, method};
    if (!sendToClient(choice, sizeof(choice))) return false;
    if (!greeting.offers_no_auth) {
      SR_LOG(Warn, "session %d: SOCKS5 client offers no acceptable method; closing", id());
      close(CloseReason::SocksError);
      return false;
    }
    state_ = State::Request;
  }
  if (early_.empty()) return true;
  socks5::Request request;
  socks5::Reply failure = socks5::Reply::GeneralFailure;
  switch (socks5::parseRequest(early_.span(), &request, &failure)) {
    case socks5::Parse::NeedMore:
      return true;
    case socks5::Parse::Invalid:
      SR_LOG(Warn, "session %d: malformed SOCKS5 request; replying 0x%02x", id(),
             static_cast<int>(failure));
      replyAndClose(static_cast<uint8_t>(failure));
      return false;
    case socks5::Parse::Ok:
      break;
  }
  if ((request.command == static_cast<uint8_t>(socks5::Command::UdpAssociate) ||
       request.command == static_cast<uint8_t>(socks5::Command::GostUdpTunnel)) &&
      host_.env().udp_server) {
    early_.consume(request.size);
    return associateUdp();
  }
  if (request.command != static_cast<uint8_t>(socks5::Command::Connect)) {
    // BIND is not offered; UDP ASSOCIATE only with -u.
    SR_LOG(Info, "session %d: SOCKS5 command 0x%02x not supported", id(), request.command);
    replyAndClose(static_cast<uint8_t>(socks5::Reply::CommandNotSupported));
    return false;
  }
  target_ = request.address;
  early_.consume(request.size);
  uint8_t reply[32];
  const size_t size = socks5::writeReply(socks5::Reply::Succeeded,
                                         crypto::SocksAddress::ipv4({0, 0, 0, 0}, 0), reply);
  if (!sendToClient(reply, size)) return false;
  state_ = State::Connecting;
  beginConnect();
  return !closed();
}

bool ClientSession::associateUdp() {
  const int fd = sock_[kClient].get();
  SocketAddress client;
  client.len = sizeof(client.storage);
  if (::getpeername(fd, client.get(), &client.len) != 0) {
    close(CloseReason::ClientClosed);
    return false;
  }
  auto relay = Socks5UdpRelay::open(host_, localAddress(fd), client);
  if (!relay.ok()) {
    SR_LOG(Warn, "session %d: UDP ASSOCIATE: %s", id(), relay.status().message());
    replyAndClose(static_cast<uint8_t>(socks5::Reply::GeneralFailure));
    return false;
  }
  udp_ = std::move(*relay);
  uint8_t reply[32];
  const size_t size =
      socks5::writeReply(socks5::Reply::Succeeded, socksAddressOf(udp_->bound()), reply);
  if (!sendToClient(reply, size)) return false;
  SR_LOG(Debug, "session %d: UDP association on %s for %s", id(), udp_->bound().toString(),
         client.toString());
  state_ = State::UdpAssociated;
  early_.release();
  timer_.armAt(host_.loop().now() + host_.env().udp_timeout);
  return true;
}

// The control connection of a UDP association. Datagrams framed gost-style (RSV = length) may
// come on it; they go to the association as if they had come on its socket, and from the first
// one on the replies come back framed on this connection (docs/UDP_OVER_TCP.md).

void ClientSession::onControlEvent(uint32_t events) {
  if ((events & kWritable) && !flushFramedReplies()) return;
  if (events & (kReadable | kClosed)) queueClientRead();
}

void ClientSession::onControlRead(const uint8_t* data, long n) {
  if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) return;
  if (n <= 0) {
    close(CloseReason::ClientClosed);  // EOF or an error ends the association
    return;
  }
  countIn(kClient, static_cast<size_t>(n));
  const GostUdpFraming::Feed fed = gost_.feed(
      {data, static_cast<size_t>(n)},
      [this](const socks5::UdpFrame& frame, std::span<const uint8_t> bytes) {
        udp_->relayFramed(frame, bytes, *this);
      });
  if (fed == GostUdpFraming::Feed::Malformed) {
    ++host_.udpStats().dropped_gost_malformed;
    SR_LOG(Info, "session %d: malformed UDP frame on the SOCKS5 control connection; closing",
           id());
    close(CloseReason::SocksError);
  }
}

bool ClientSession::onFramedReply(std::span<const uint8_t> frame) {
  if (closed()) return false;
  size_t sent = 0;
  if (gost_.queued().empty()) {
    const ssize_t n = sendSome(kClient, frame.data(), frame.size());
    if (n < 0) {
      // A broken connection: its read side reports it and ends the session (not from here,
      // inside the association's handler).
      ++host_.udpStats().dropped_send;
      return false;
    }
    sent = static_cast<size_t>(n);
    if (sent == frame.size()) return true;
  }
  // A partly sent frame's rest always fits (the queue was empty); a new frame may not.
  if (!gost_.queue(frame.subspan(sent))) {
    ++host_.udpStats().dropped_gost_queue;
    return false;
  }
  watch(kClient, kReadable | kWritable);
  return true;
}

bool ClientSession::flushFramedReplies() {
  const std::span<const uint8_t> queued = gost_.queued();
  if (!queued.empty()) {
    const ssize_t n = sendSome(kClient, queued.data(), queued.size());
    if (n < 0) {
      close(CloseReason::IoError);
      return false;
    }
    gost_.consume(static_cast<size_t>(n));
  }
  if (gost_.queued().empty()) watch(kClient, kReadable);
  return true;
}

void ClientSession::onClose() { udp_.reset(); }

void ClientSession::replyAndClose(uint8_t reply_code) {
  uint8_t reply[32];
  const size_t size = socks5::writeReply(static_cast<socks5::Reply>(reply_code),
                                         crypto::SocksAddress::ipv4({0, 0, 0, 0}, 0), reply);
  if (sendToClient(reply, size)) close(CloseReason::SocksError);
}

bool ClientSession::sendToClient(const uint8_t* bytes, size_t n) {
  // A fresh socket's send buffer always takes a few bytes; anything else is an error.
  if (sendSome(kClient, bytes, n) != static_cast<ssize_t>(n)) {
    close(CloseReason::IoError);
    return false;
  }
  return true;
}

void ClientSession::beginConnect() {
  if (const AclSlot* acl = host_.env().acl; acl != nullptr) {
    bypass_ = acl->get()->route(target_) == Acl::Route::Bypass;
    ++(bypass_ ? host_.stats().acl_bypass : host_.stats().acl_proxy);
    if (bypass_) {
      SR_LOG(Debug, "session %d: %s bypasses the server (acl)", id(),
             log::escaped(target_.toString()));
      connectRemote(target_, /*enforce_policy=*/false, host_.env().config.fast_open);
      return;
    }
  }
  first_data_deadline_ = host_.loop().now() + host_.env().first_data_wait;
  plan_ = host_.env().upstreams->plan(id());
  attempt_ = 0;
  connectServer();
}

const Upstream& ClientSession::upstream() const {
  return host_.env().upstreams->server(plan_[attempt_]);
}

void ClientSession::connectServer() {
  connect_started_ = host_.loop().readClock();
  if (attempt_ == 0) {
    SR_LOG(Debug, "session %d: server %s", id(), upstream().label);
  }
  connectRemote(upstream().address, /*enforce_policy=*/false, host_.env().config.fast_open);
}

bool ClientSession::onConnectFailed(CloseReason reason) {
  if (bypass_) return false;  // a direct connection has no other server to try
  UpstreamBalancer& balancer = *host_.env().upstreams;
  const std::string& failed = upstream().label;
  balancer.onConnectFailed(plan_[attempt_]);
  if (attempt_ + 1 >= plan_.size()) {
    SR_LOG(Debug, "session %d: server %s: %s; no other server left", id(), failed,
           closeReasonName(reason));
    return false;
  }
  ++attempt_;
  SR_LOG(Debug, "session %d: server %s: %s; failing over to %s", id(), failed,
         closeReasonName(reason), upstream().label);
  connectServer();
  return true;
}

void ClientSession::onRemoteConnected() {
  connected_ = true;
  if (bypass_) {
    relayDirect();
    return;
  }
  host_.env().upstreams->onConnected(plan_[attempt_],
                                     host_.loop().readClock() - connect_started_);
  if (!early_.empty() || client_eof_ || host_.loop().now() >= first_data_deadline_) {
    sendFirst();
    return;
  }
  state_ = State::WaitingData;
  watch(kRemote, 0);  // writable until we have something to say
  timer_.armAt(first_data_deadline_);
}

void ClientSession::sendFirst() {
  const Credentials& creds = upstream().credentials;
  if (creds.method->edition == crypto::Edition::Aead2022) {
    sendFirst2022();
    return;
  }
  encoder_.emplace(*creds.method, *creds.provider, creds.master.bytes());
  decoder_.emplace(*creds.method, *creds.provider, creds.master.bytes());
  uint8_t* plain = host_.scratchIn();
  const size_t header = crypto::writeAddress(target_, {plain, WorkerContext::kScratchSize});
  if (header == 0) {
    close(CloseReason::SocksError);
    return;
  }
  if (!early_.empty()) std::memcpy(plain + header, early_.data(), early_.size());
  const size_t total = header + early_.size();
  early_.release();
  crypto::CodecProgress progress;
  if (!encoder_->encode({plain, total}, {host_.scratchOut(), WorkerContext::kScratchSize},
                        &progress)) {
    close(CloseReason::BadStream);
    return;
  }
  dir_[kUp].sealer = &*encoder_;
  dir_[kDown].opener = &*decoder_;
  relayFirst(progress.produced);
}

void ClientSession::relayDirect() {
  // No transform on either direction: TcpSession relays the bytes as they are.
  Direction& up = dir_[kUp];
  up.pending_out.assign(early_.data(), early_.size());
  early_.release();
  up.eof = client_eof_;
  timer_.cancel();
  startRelay();
}

void ClientSession::relayFirst(size_t sealed) {
  Direction& up = dir_[kUp];
  up.pending_out.assign(host_.scratchOut(), sealed);
  up.eof = client_eof_;
  timer_.cancel();
  startRelay();  // its first flush is the one write of the salt, the headers and first data
}

void ClientSession::sendFirst2022() {
  const Credentials& creds = upstream().credentials;
  // Padding: nullopt pads with 1..900 random bytes exactly when no first data is bundled.
  // With identity keys (SIP023) one identity header per iPSK goes after the salt.
  encoder2022_.emplace(crypto::Aead2022StreamEncoder::request(*creds.method, *creds.provider,
                                                              creds.requestKeys(), target_));
  crypto::CodecProgress progress;
  if (!encoder2022_->valid() ||
      !encoder2022_->encode(early_.span(), {host_.scratchOut(), WorkerContext::kScratchSize},
                            host_.loop().unixSeconds(), &progress) ||
      progress.consumed != early_.size()) {
    close(CloseReason::BadStream);
    return;
  }
  early_.release();
  decoder2022_.emplace(crypto::Aead2022StreamDecoder::response(
      *creds.method, *creds.provider, creds.master.bytes(), encoder2022_->salt()));
  dir_[kUp].sealer2022 = &*encoder2022_;
  dir_[kDown].opener2022 = &*decoder2022_;
  relayFirst(progress.produced);
}

}  // namespace shadowrelay::relay
