// SPDX-License-Identifier: Apache-2.0
#include "relay/tcp/session.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/net/endpoint.h"
#include "relay/target_policy.h"
#include "relay/tcp/session_host.h"
#include "relay/tcp/session_io_batch.h"

namespace shadowrelay::relay {

TcpSession::TcpSession(SessionHost& host, Fd client)
    : host_(host),
      timer_(host.loop(), [this] { onTimer(); }),
      accepted_at_(host.loop().now()),
      id_(host.nextSessionId()),
      traffic_(&host.traffic("")),
      last_active_(accepted_at_) {
  sock_[kClient] = std::move(client);
  watcher_[kClient].emplace(host_.loop(), sock_[kClient].get(), 0,
                            [this](uint32_t events) { onEvent(kClient, events); });
  dir_[kUp].from = kClient;
  dir_[kUp].to = kRemote;
  dir_[kDown].from = kRemote;
  dir_[kDown].to = kClient;
  ++host_.stats().accepted;
  ++host_.stats().active;
}

TcpSession::~TcpSession() = default;

void TcpSession::close(CloseReason reason) {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  if (rate_timer_) rate_timer_->cancel();
  resolve_.cancel();
  for (Side side : {kClient, kRemote}) {
    if (watcher_[side]) watcher_[side]->willCloseFd();
    watcher_[side].reset();
    sock_[side].reset();
  }
  dir_[kUp].pending_in.release();
  dir_[kUp].pending_out.release();
  dir_[kDown].pending_in.release();
  dir_[kDown].pending_out.release();
  onClose();
  TcpStats& stats = host_.stats();
  ++stats.closed[static_cast<size_t>(reason)];
  --stats.active;
  ++traffic_->closed[static_cast<size_t>(reason)];
  if (relaying_) {
    WorkerSample& sample = host_.sample();
    sample.connection_bytes.observe(static_cast<double>(payloadUp() + payloadDown()));
    sample.connection_seconds.observe(
        std::chrono::duration<double>(host_.loop().now() - accepted_at_).count());
  }
  if (user_ != nullptr) user_->live->tcp_sessions.fetch_sub(1, std::memory_order_relaxed);
  SR_LOG(Debug, "session %d closed: %s", id_, closeReasonName(reason));
  host_.releaseSession(*this);
}

uint32_t TcpSession::setUser(RelayUserPtr user) {
  user_ = std::move(user);
  const uint32_t others = user_->live->tcp_sessions.fetch_add(1, std::memory_order_relaxed);
  traffic_ = &host_.traffic(user_->name);
  ++traffic_->tcp_connections;
  // What the session moved before it knew its user stays under "" (nothing: the server relays
  // only after identification).
  return others;
}

void TcpSession::countIn(Side side, size_t n) {
  if (side == kClient) {
    host_.stats().bytes_from_clients += n;
    from_client_ += n;
    if (!plain_at_remote_) traffic_->tcp_bytes_up += n;
  } else {
    host_.stats().bytes_from_remotes += n;
    from_remote_ += n;
    if (plain_at_remote_) traffic_->tcp_bytes_down += n;
  }
}

void TcpSession::countOut(Side side, size_t n) {
  if (side == kClient) {
    host_.stats().bytes_to_clients += n;
    to_client_ += n;
    if (!plain_at_remote_) traffic_->tcp_bytes_down += n;
  } else {
    host_.stats().bytes_to_remotes += n;
    to_remote_ += n;
    if (plain_at_remote_) traffic_->tcp_bytes_up += n;
  }
}

size_t TcpSession::bufferedBytes() const {
  size_t total = 0;
  for (const Direction& d : dir_) total += d.pending_in.capacity() + d.pending_out.capacity();
  return total;
}

void TcpSession::connectRemote(const crypto::SocksAddress& target, bool enforce_policy,
                               bool fast_open) {
  connect_target_ = &target;
  enforce_policy_ = enforce_policy;
  fast_open_ = fast_open;
  connect_phase_ = ConnectPhase::Resolving;
  timer_.armAfter(host_.env().connect_timeout);
  if (enforce_policy && target.type == crypto::SocksAddress::Type::Domain &&
      host_.env().acl != nullptr && host_.env().acl->get()->blocksName(target.host)) {
    SR_LOG(Debug, "session %d: target %s blocked by the ACL", id_,
           log::escaped(target.toString()));
    ++host_.stats().acl_block;
    connectFailed(CloseReason::TargetRefused);
    return;
  }
  if (target.type == crypto::SocksAddress::Type::Domain) {
    resolve_ = host_.resolver().resolve(
        target.host, host_.env().preference,
        [this](dns::ResolveResult result) { onResolved(std::move(result)); });
    return;
  }
  dns::ResolveResult literal;
  literal.status = dns::ResolveStatus::Ok;
  literal.addresses.push_back(ipOf(target));
  onResolved(std::move(literal));
}

void TcpSession::onResolved(dns::ResolveResult result) {
  if (closed_) return;
  if (!result.ok()) {
    SR_LOG(Debug, "session %d: cannot resolve %s: %s", id_,
           log::escaped(connect_target_->hostString()), dns::toString(result.status));
    connectFailed(CloseReason::ResolveFailed);
    return;
  }
  const TargetPolicy policy = host_.env().targetPolicy();
  bool acl_blocked = false;
  for (const dns::IpAddress& ip : result.addresses) {
    const SocketAddress address = socketAddressOf(ip, connect_target_->port);
    if (!enforce_policy_ || policy.allows(address.get())) {
      candidates_.push_back(ip);
    } else {
      acl_blocked = acl_blocked || policy.aclBlocks(address.get());
    }
  }
  if (candidates_.empty()) {
    if (acl_blocked) ++host_.stats().acl_block;
    SR_LOG(Debug, "session %d: target %s refused (not public unicast, or this host)", id_,
           log::escaped(connect_target_->toString()));
    connectFailed(CloseReason::TargetRefused);
    return;
  }
  connect_phase_ = ConnectPhase::Connecting;
  connectNext();
}

void TcpSession::attachRemote(Fd fd) {
  sock_[kRemote] = std::move(fd);
  watcher_[kRemote].emplace(host_.loop(), sock_[kRemote].get(), kWritable,
                            [this](uint32_t events) { onEvent(kRemote, events); });
  onRemoteConnected();
}

void TcpSession::connectNext() {
  watcher_[kRemote].reset();
  sock_[kRemote].reset();
  while (next_candidate_ < candidates_.size()) {
    const dns::IpAddress& ip = candidates_[next_candidate_++];
    const SocketAddress address = socketAddressOf(ip, connect_target_->port);
    const int fd = connectNonBlocking(address, fast_open_, host_.env().config.no_delay);
    if (fd >= 0) {
      sock_[kRemote] = Fd(fd);
      watcher_[kRemote].emplace(host_.loop(), fd, kWritable,
                                [this](uint32_t events) { onEvent(kRemote, events); });
      timer_.armAfter(host_.env().connect_timeout);
      return;
    }
    SR_LOG(Debug, "session %d: connect %s: %s", id_, address.toString(), std::strerror(-fd));
  }
  connectFailed(CloseReason::ConnectFailed);
}

void TcpSession::connectFailed(CloseReason reason) {
  connect_phase_ = ConnectPhase::None;
  resolve_.cancel();
  candidates_.clear();
  next_candidate_ = 0;
  watcher_[kRemote].reset();
  sock_[kRemote].reset();
  timer_.cancel();
  if (!onConnectFailed(reason)) close(reason);
}

void TcpSession::onConnectEvent(uint32_t events) {
  // Writable without EPOLLERR/EPOLLHUP: the connect succeeded; no SO_ERROR query needed.
  // With them, SO_ERROR tells a failed connect (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ...) from
  // one that succeeded and was reset or closed before this event ran (ECONNRESET, EPIPE, or no
  // error): the target may have sent a reply first, which the relay reads before the end.
  int err = 0;
  if (events & kClosed) {
    err = socketError(sock_[kRemote].get());
    if (err == ECONNRESET || err == EPIPE) err = 0;
  }
  if (err != 0) {
    SR_LOG(Debug, "session %d: connect to %s: %s", id_, log::escaped(connect_target_->toString()),
           std::strerror(err));
    connectNext();
    return;
  }
  connect_phase_ = ConnectPhase::None;
  resolve_.cancel();
  candidates_.clear();
  candidates_.shrink_to_fit();
  timer_.cancel();
  onRemoteConnected();  // sets the remote interest (one epoll_ctl MOD, no DEL + ADD)
}

void TcpSession::watch(Side side, uint32_t interest) {
  if (watcher_[side]) watcher_[side]->setInterest(interest);
}

ssize_t TcpSession::sendSome(Side side, const uint8_t* bytes, size_t n) {
  for (;;) {
    ssize_t w = ::send(sock_[side].get(), bytes, n, MSG_NOSIGNAL);
    if (w >= 0) {
      countOut(side, static_cast<size_t>(w));
      if (w > 0) last_active_ = host_.loop().now();
      return w;
    }
    // EINPROGRESS: a fast-open connect without a cookie yet; the data waits for writability.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS) return 0;
    if (errno != EINTR) return -errno;
  }
}

void TcpSession::startRelay() {
  relaying_ = true;
  last_active_ = host_.loop().now();
  timer_.armAfter(host_.env().idle_timeout);
  for (Direction& d : dir_) {
    if (!d.pending_out.empty()) {
      if (!flush(d)) return;
    } else {
      finishIfDone(d);
      if (closed_) return;
    }
  }
  updateInterest();
}

void TcpSession::onEvent(Side side, uint32_t events) {
  if (closed_) return;
  if (!relaying_) {
    if (side == kRemote && connect_phase_ == ConnectPhase::Connecting) {
      onConnectEvent(events);
    } else {
      onHandshakeEvent(side, events);
    }
    return;
  }
  Direction& from = dir_[side == kClient ? kUp : kDown];
  Direction& to = dir_[side == kClient ? kDown : kUp];
  if ((events & kWritable) && !to.pending_out.empty() && !to.send_queued) {
    to.send_queued = true;
    host_.ioBatch().queueSend(*this, side == kClient ? kDown : kUp);
  }
  if ((events & (kReadable | kClosed)) && !from.eof && from.pending_out.empty() &&
      !from.recv_queued && !from.rate_paused) {
    from.recv_queued = true;
    host_.ioBatch().queueRecv(*this, side == kClient ? kUp : kDown);
  }
  if ((events & kClosed) && from.eof) {
    // Nothing left to read here; an error reported on the socket ends the session.
    if (socketError(sock_[side].get()) != 0) {
      close(CloseReason::IoError);
      return;
    }
  }
  updateInterest();
}

void TcpSession::onTimer() {
  if (closed_) return;
  if (connect_phase_ == ConnectPhase::Resolving) {
    // The connect deadline covers the lookup too: a name server slower than it is a connect
    // timeout (counted as one), not a failed lookup.
    SR_LOG(Debug, "session %d: %s not resolved within the connect timeout", id_,
           log::escaped(connect_target_->host));
    connectFailed(CloseReason::ConnectTimeout);
    return;
  }
  if (connect_phase_ == ConnectPhase::Connecting) {
    SR_LOG(Debug, "session %d: connect to %s timed out", id_,
           log::escaped(connect_target_->toString()));
    if (next_candidate_ < candidates_.size()) {
      connectNext();
    } else {
      connectFailed(CloseReason::ConnectTimeout);
    }
    return;
  }
  if (!relaying_) {
    onHandshakeTimer();
    return;
  }
  const auto idle = host_.env().idle_timeout;
  const TimePoint due = last_active_ + idle;
  if (host_.loop().now() >= due) {
    close(CloseReason::IdleTimeout);
  } else {
    timer_.armAt(due);  // lazy idle timer: re-armed only when it fires
  }
}

uint64_t TcpSession::rateLimit() const {
  return user_ == nullptr ? 0 : user_->live->bytes_per_second.load(std::memory_order_relaxed);
}

void TcpSession::pauseForRate(uint8_t dir, int64_t now) {
  RateBucket& bucket = user_->live->rate[dir];
  dir_[dir].rate_paused = true;
  const int64_t wait = bucket.wait(now);
  // The time the user waited, once however many of its sessions wait at once.
  traffic_->rate_limited_nanos[dir] += static_cast<uint64_t>(bucket.noteWait(now, now + wait));
  if (!rate_timer_) rate_timer_.emplace(host_.loop(), [this] { onRateTimer(); });
  const TimePoint due = host_.loop().now() + std::chrono::nanoseconds(wait);
  if (!rate_timer_->armed() || rate_timer_->deadline() > due) rate_timer_->armAt(due);
}

void TcpSession::onRateTimer() {
  if (closed_) return;
  // Read again; takeRecv() pauses once more if other sessions of the user took the room.
  for (uint8_t dir : {kUp, kDown}) {
    Direction& d = dir_[dir];
    if (!d.rate_paused) continue;
    d.rate_paused = false;
    if (!d.eof && d.pending_out.empty() && !d.recv_queued) {
      d.recv_queued = true;
      host_.ioBatch().queueRecv(*this, dir);
    }
  }
  updateInterest();
}

bool TcpSession::transform(Direction& d, const uint8_t* in, size_t n, uint8_t* out,
                           size_t* produced) {
  if (d.sealer == nullptr && d.opener == nullptr && d.sealer2022 == nullptr &&
      d.opener2022 == nullptr) {
    std::memcpy(out, in, n);  // a local's --acl bypass: no Shadowsocks on this connection
    *produced = n;
    return true;
  }
  if (d.sealer2022 != nullptr || d.opener2022 != nullptr) {
    return transform2022(d, in, n, out, produced);
  }
  crypto::CodecProgress progress;
  if (d.sealer != nullptr) {
    if (!d.sealer->encode({in, n}, {out, WorkerContext::kScratchSize}, &progress)) return false;
    *produced = progress.produced;
    return progress.consumed == n;
  }
  if (d.opener->decode({in, n}, {out, WorkerContext::kScratchSize}, &progress) !=
      crypto::DecodeStatus::Ok) {
    return false;
  }
  if (progress.consumed < n) d.pending_in.assign(in + progress.consumed, n - progress.consumed);
  *produced = progress.produced;
  return true;
}

bool TcpSession::transform2022(Direction& d, const uint8_t* in, size_t n, uint8_t* out,
                               size_t* produced) {
  crypto::CodecProgress progress;
  if (d.sealer2022 != nullptr) {
    // The wall clock only for the header's timestamp (the first write).
    const uint64_t now = d.sealer2022->headerSent() ? 0 : host_.loop().unixSeconds();
    if (!d.sealer2022->encode({in, n}, {out, WorkerContext::kScratchSize}, now, &progress)) {
      return false;
    }
    *produced = progress.produced;
    return progress.consumed == n;
  }
  const uint64_t now = d.opener2022->authenticated() ? 0 : host_.loop().unixSeconds();
  const crypto::Status2022 status =
      d.opener2022->decode({in, n}, {out, WorkerContext::kScratchSize}, now, &progress);
  if (status != crypto::Status2022::Ok) {
    SR_LOG(Debug, "session %d: 2022 stream: %s", id_, crypto::statusName(status));
    return false;
  }
  if (progress.consumed < n) d.pending_in.assign(in + progress.consumed, n - progress.consumed);
  *produced = progress.produced;
  return true;
}

void TcpSession::queueClientRead(size_t limit) {
  Direction& up = dir_[kUp];
  if (closed_ || up.recv_queued) return;
  client_read_limit_ = limit;
  up.recv_queued = true;
  host_.ioBatch().queueRecv(*this, kUp);
}

int TcpSession::takeRecv(uint8_t dir, uint8_t* buf, size_t* have, size_t* want) {
  Direction& d = dir_[dir];
  d.recv_queued = false;
  *have = 0;
  *want = relaying_ ? WorkerContext::kReadSize : client_read_limit_;
  if (closed_ || d.eof || *want == 0 || (relaying_ && !d.pending_out.empty())) return -1;
  if (const uint64_t limit = relaying_ ? rateLimit() : 0; limit != 0) {
    // Read no more than the user's rate admits now (onRecvDone() charges what was read).
    const int64_t now = rateClockNanos(host_.loop().now());
    const uint64_t room = user_->live->rate[dir].room(limit, now);
    if (room == 0) {
      pauseForRate(dir, now);
      return -1;
    }
    *want = static_cast<size_t>(std::min<uint64_t>(*want, room));
  }
  *have = d.pending_in.size();
  if (*have > 0) {
    std::memcpy(buf, d.pending_in.data(), *have);
    d.pending_in.clear();  // keeps its capacity for the next partial unit
    // A SIP004 partial unit is under 0x3FFF + 34 bytes: kReadSize always fits after it. A 2022
    // one can be a whole 0xFFFF chunk: read less then (the buffer holds the chunk and tags).
    if (*have + *want > WorkerContext::kScratchSize) *want = WorkerContext::kScratchSize - *have;
  }
  return sock_[d.from].get();
}

int TcpSession::takeSend(uint8_t dir, bool from_pending, const uint8_t** data, size_t* len) {
  Direction& d = dir_[dir];
  if (from_pending) {
    d.send_queued = false;
    *data = d.pending_out.data();
    *len = d.pending_out.size();
  }
  if (closed_ || *len == 0) return -1;
  return sock_[d.to].get();
}

bool TcpSession::joinBatch() {
  if (in_batch_) return false;
  in_batch_ = true;
  return true;
}

void TcpSession::onRecvDone(uint8_t dir, uint8_t* buf, size_t have, long result, uint8_t* out,
                            size_t* out_len) {
  *out_len = 0;
  if (closed_) return;
  if (!relaying_) {
    onClientRead(buf, have, result);
    return;
  }
  Direction& d = dir_[dir];
  if (result < 0) {
    if (have > 0) d.pending_in.assign(buf, have);
    if (result == -EAGAIN || result == -EWOULDBLOCK || result == -EINTR) return;
    close(CloseReason::IoError);
    return;
  }
  if (result == 0) {
    d.eof = true;  // a partial unit left in a truncated stream is dropped
    return;
  }
  last_active_ = host_.loop().now();
  countIn(d.from, static_cast<size_t>(result));
  if (const uint64_t limit = rateLimit(); limit != 0) {
    user_->live->rate[dir].charge(limit, static_cast<uint64_t>(result),
                                  rateClockNanos(last_active_));
  }
  if (!transform(d, buf, have + static_cast<size_t>(result), out, out_len)) {
    close(CloseReason::BadStream);
  }
}

void TcpSession::onSendDone(uint8_t dir, const uint8_t* data, size_t len, bool from_pending,
                            long result) {
  if (closed_) return;
  Direction& d = dir_[dir];
  if (result < 0 && result != -EAGAIN && result != -EWOULDBLOCK && result != -EINTR) {
    close(CloseReason::IoError);
    return;
  }
  const size_t taken = result > 0 ? static_cast<size_t>(result) : 0;
  if (taken > 0) {
    last_active_ = host_.loop().now();
    countOut(d.to, taken);
  }
  if (from_pending) {
    d.pending_out.consume(taken);
  } else if (taken < len) {
    d.pending_out.assign(data + taken, len - taken);
  }
}

void TcpSession::afterBatch() {
  in_batch_ = false;
  if (closed_ || !relaying_) return;  // the handshake sets its own interest
  for (Direction& d : dir_) {
    finishIfDone(d);
    if (closed_) return;
  }
  updateInterest();
}

bool TcpSession::flush(Direction& d) {
  ssize_t w = sendSome(d.to, d.pending_out.data(), d.pending_out.size());
  if (w < 0) {
    close(CloseReason::IoError);
    return false;
  }
  d.pending_out.consume(static_cast<size_t>(w));
  if (d.pending_out.empty()) finishIfDone(d);
  return !closed_;
}

void TcpSession::finishIfDone(Direction& d) {
  if (!d.eof || d.shut || !d.pending_out.empty()) return;
  d.shut = true;
  if (dir_[kUp].shut && dir_[kDown].shut) {
    // Both ways finished: close() sends the last FIN (nothing is left unread, so no RST).
    close(CloseReason::Done);
    return;
  }
  ::shutdown(sock_[d.to].get(), SHUT_WR);
}

void TcpSession::updateInterest() {
  for (Side side : {kClient, kRemote}) {
    if (!watcher_[side]) continue;
    const Direction& from = dir_[side == kClient ? kUp : kDown];
    const Direction& to = dir_[side == kClient ? kDown : kUp];
    uint32_t want = 0;
    if (!from.eof && from.pending_out.empty() && !from.rate_paused) want |= kReadable;
    if (!to.pending_out.empty()) want |= kWritable;
    watcher_[side]->setInterest(want);
  }
}

}  // namespace shadowrelay::relay
