// SPDX-License-Identifier: Apache-2.0
#include "relay/tcp/server_session.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "relay/event/event_loop.h"
#include "relay/log.h"
#include "relay/tcp/session_host.h"

namespace shadowrelay::relay {

namespace {
// After the FIN that ends a rejected connection, how long to keep discarding what the client
// still sends, so that the final close() finds an empty receive queue and sends no RST.
constexpr auto kLingerAfterFin = std::chrono::seconds(2);
// Opened client bytes held while the target connect is in flight; beyond that the client is
// not read until the relay starts.
constexpr size_t kMaxEarlyPlain = 64 * 1024;
}  // namespace

ServerSession::ServerSession(SessionHost& host, Fd client, const SocketAddress& peer,
                             uint16_t user_port, PreauthSlot preauth)
    : TcpSession(host, std::move(client)),
      client_ip_(ipKey(peer)),
      device_key_(sourceKey(peer)),
      user_port_(user_port),
      preauth_(std::move(preauth)) {
  plain_at_remote_ = true;
}

void ServerSession::start() {
  const UserTablePtr& table = host_.users().table();
  if (const PortIdentity* identity = table ? table->identityPort(user_port_) : nullptr) {
    // SIP023: the identity header after the salt names the user (one hash lookup); the port's
    // iPSK opens it. The table is held so the lookup outlives a table swap mid-handshake.
    identity_table_ = table;
    identity_ = identity;
    decoder2022_.emplace(crypto::Aead2022StreamDecoder::request(
        identity->method(), *identity->provider(), identity->identityKey(), identity));
    timer_.armAt(accepted_at_ + host_.env().handshake_timeout);
    watch(kClient, kReadable);
    return;
  }
  const std::span<const RelayUserPtr> users = host_.users().candidates(user_port_);
  if (users.size() == 1) {
    // One user: no trial decryption; its key decodes the stream as it arrives.
    candidate_ = users.front();
    if (candidate_->method->edition == crypto::Edition::Aead2022) {
      decoder2022_.emplace(crypto::Aead2022StreamDecoder::request(
          *candidate_->method, *candidate_->provider, candidate_->key.bytes()));
    } else {
      decoder_.emplace(*candidate_->method, *candidate_->provider, candidate_->key.bytes());
    }
  }
  timer_.armAt(accepted_at_ + host_.env().handshake_timeout);
  watch(kClient, kReadable);
}

void ServerSession::onHandshakeEvent(Side side, uint32_t /*events*/) {
  if (side == kClient) queueClientRead(handshakeReadLimit());
}

size_t ServerSession::handshakeReadLimit() const {
  if (!decoder2022_ || state_ != State::Handshake || decoder2022_->authenticated()) {
    // A 2022 partial unit of up to a whole 0xFFFF chunk: takeRecv() cuts the read to what the
    // buffer holds after it (a 2017 partial unit always leaves kReadSize).
    return WorkerContext::kReadSize;
  }
  // Before authentication exactly the first unit (salt + fixed header), never a byte more
  // (§2.4): what is still missing of it after the kept partial unit.
  return decoder2022_->nextUnitSize() - dir_[kUp].pending_in.size();
}

void ServerSession::onClientRead(uint8_t* data, size_t have, long result) {
  switch (state_) {
    case State::Handshake:
    case State::Connecting:  // early data, kept in plain_ up to kMaxEarlyPlain
      onHandshakeBytes(data, have, result);
      break;
    case State::Draining:
    case State::Closing:
      onDiscarded(result);
      break;
  }
}

void ServerSession::onHandshakeTimer() {
  switch (state_) {
    case State::Handshake:
      drain_reason_ = CloseReason::HandshakeTimeout;  // ended like a rejected probe
      finishDrain();
      break;
    case State::Draining:
      finishDrain();
      break;
    case State::Closing:
      close(drain_reason_);
      break;
    case State::Connecting:
      break;  // the connect timer belongs to TcpSession
  }
}

void ServerSession::onHandshakeBytes(uint8_t* in, size_t have, long n) {
  Direction& up = dir_[kUp];
  if (n < 0) {
    if (have > 0) up.pending_in.assign(in, have);
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) return;
    close(CloseReason::ClientClosed);
    return;
  }
  if (n == 0) {
    if (state_ == State::Connecting) {
      up.eof = true;  // forwarded once the target is connected and the early data written
      watch(kClient, 0);
    } else {
      close(CloseReason::ClientClosed);
    }
    return;
  }
  countIn(kClient, static_cast<size_t>(n));
  const size_t total = have + static_cast<size_t>(n);
  if (decoder2022_) {
    decodeHandshake2022(in, total);
    return;
  }
  if (!decoder_ && !identify({in, total})) return;
  crypto::CodecProgress progress;
  const crypto::DecodeStatus status =
      decoder_->decode({in, total}, {host_.scratchOut(), WorkerContext::kScratchSize}, &progress);
  if (status != crypto::DecodeStatus::Ok) {
    if (state_ == State::Connecting) {
      close(CloseReason::BadStream);  // authenticated earlier: a corrupted stream, not a probe
    } else {
      reject(&host_.stats().auth_failed, CloseReason::AuthFailed, "first chunk does not open");
    }
    return;
  }
  if (decoder_->authenticated() && !admitted_ && !admit()) return;
  if (!keepDecoded(in, total, progress)) return;
  if (plain_.empty()) return;
  size_t consumed = 0;
  switch (crypto::parseAddress(plain_.span(), &target_, &consumed)) {
    case crypto::AddressParse::NeedMore:
      return;
    case crypto::AddressParse::Invalid:
      reject(&host_.stats().bad_addresses, CloseReason::BadAddress, "unreadable address");
      return;
    case crypto::AddressParse::Ok:
      break;
  }
  plain_.consume(consumed);
  startTarget();
}

bool ServerSession::keepDecoded(const uint8_t* in, size_t total,
                                const crypto::CodecProgress& progress) {
  if (progress.consumed < total) {
    dir_[kUp].pending_in.assign(in + progress.consumed, total - progress.consumed);
  }
  plain_.append(host_.scratchOut(), progress.produced);
  if (state_ != State::Connecting) return true;
  // Backpressure while connecting: the kernel holds the rest.
  if (plain_.size() >= kMaxEarlyPlain) watch(kClient, 0);
  return false;
}

void ServerSession::decodeHandshake2022(const uint8_t* in, size_t total) {
  crypto::Aead2022StreamDecoder& decoder = *decoder2022_;
  const size_t first = decoder.nextUnitSize();
  if (!decoder.authenticated() && total < first) {
    dir_[kUp].pending_in.assign(in, total);  // the rest of the first unit is still on its way
    return;
  }
  crypto::CodecProgress progress;
  const uint64_t now = decoder.authenticated() ? 0 : host_.loop().unixSeconds();
  const crypto::Status2022 status = decoder.decode(
      {in, total}, {host_.scratchOut(), WorkerContext::kScratchSize}, now, &progress);
  if (status != crypto::Status2022::Ok) {
    if (state_ == State::Connecting) {
      SR_LOG(Debug, "session %d: 2022 stream: %s", id(), crypto::statusName(status));
      close(CloseReason::BadStream);
    } else {
      reject2022(status);
    }
    return;
  }
  if (decoder.authenticated() && !admitted_) {
    if (identity_ != nullptr && !identifyByHeader()) return;
    if (!admit()) return;
  }
  if (!keepDecoded(in, total, progress)) return;
  if (!decoder.headerComplete()) return;
  target_ = decoder.requestHeader().target;
  startTarget();
}

void ServerSession::reject2022(crypto::Status2022 status) {
  TcpStats& stats = host_.stats();
  const char* why = crypto::statusName(status).data();  // NUL-terminated literals
  switch (status) {
    case crypto::Status2022::StaleTimestamp:
      reject(&stats.stale_timestamps, CloseReason::StaleTimestamp, why);
      return;
    case crypto::Status2022::BadAddress:
    case crypto::Status2022::BadHeader:
      reject(&stats.bad_addresses, CloseReason::BadAddress, why);
      return;
    default:  // auth_failed, bad_type, bad_length, ...: the key does not open it as a request
      reject(&stats.auth_failed, CloseReason::AuthFailed, why);
      return;
  }
}

void ServerSession::startTarget() {
  state_ = State::Connecting;
  if (const int version = uot::versionOf(target_)) {
    startUot(version);
    return;
  }
  // The client stays readable: a request that follows is opened into plain_ meanwhile.
  connectRemote(target_, /*enforce_policy=*/true, /*fast_open=*/false);
}

bool ServerSession::identify(std::span<const uint8_t> start) {
  RelayUserPtr user;
  switch (host_.users().matchStream(user_port_, client_ip_, start, &user, &tried_)) {
    case UserMatcher::Outcome::NeedMore:
      dir_[kUp].pending_in.assign(start.data(), start.size());
      return false;
    case UserMatcher::Outcome::NoMatch:
      reject(&host_.stats().auth_failed, CloseReason::AuthFailed, "no user's key opens it");
      return false;
    case UserMatcher::Outcome::Matched:
      break;
  }
  candidate_ = std::move(user);
  decoder_.emplace(*candidate_->method, *candidate_->provider, candidate_->key.bytes());
  return true;
}

bool ServerSession::identifyByHeader() {
  // The decoder opened the header with the key the lookup gave for this hash: the user is
  // found (the table is the one held since start()).
  candidate_ = identity_->user(*decoder2022_->user());
  identity_ = nullptr;
  identity_table_.reset();
  if (candidate_ == nullptr) {
    reject(&host_.stats().auth_failed, CloseReason::AuthFailed, "no user for the identity");
    return false;
  }
  return true;
}

bool ServerSession::admit() {
  admitted_ = true;
  // The table may have changed since the key was chosen (a user deleted, rotated, disabled or
  // over a limit meanwhile): judge the session by the user as it is now.
  RelayUserPtr now =
      host_.users().table() ? host_.users().table()->findShared(candidate_->name) : nullptr;
  if (now == nullptr || !now->enabled || !now->sameKey(*candidate_)) {
    reject(&host_.stats().auth_failed, CloseReason::AuthFailed, "the user is gone");
    return false;
  }
  if (decoder2022_) {
    // §2.4: after the header opened and its timestamp passed, the exact store (not the filter).
    crypto::SaltStore2022* store = host_.env().salt_store_2022;
    const auto seen = store != nullptr ? store->checkAndInsert(decoder2022_->salt(),
                                                               host_.loop().unixSeconds())
                                       : crypto::SaltStore2022::Result::Full;
    if (seen != crypto::SaltStore2022::Result::Fresh) {
      reject(&host_.stats().replayed_salts, CloseReason::ReplayedSalt,
             seen == crypto::SaltStore2022::Result::Replayed
                 ? "replayed salt"
                 : "salt store full (2022 connections refused until salts expire)");
      return false;
    }
  } else if (!host_.env().salt_filter->checkAndInsert(decoder_->salt())) {
    reject(&host_.stats().replayed_salts, CloseReason::ReplayedSalt, "replayed salt");
    return false;
  }
  // Authenticated: no longer one of the connections anyone can open for free.
  preauth_.release();
  // Counted as the user's from here on; the limit check follows, so that a refusal is counted
  // under the user too.
  candidate_.reset();
  const uint32_t others = setUser(now);
  if (now->expired) {
    ++host_.traffic(user()->name).refused_expired;
    SR_LOG(Debug, "session %d: user %s expired; refused", id(), user()->name);
    close(CloseReason::OverLimit);
    return false;
  }
  const bool admits = now->admitsNewSession(others);
  if (!admits) {
    ++host_.traffic(user()->name).refused_over_limit;
    SR_LOG(Debug, "session %d: user %s over a limit; refused", id(), user()->name);
    close(CloseReason::OverLimit);
    return false;
  }
  // A new device beyond max_devices is refused the same quiet way; the devices counted
  // already keep working.
  std::optional<DeviceLease> device = now->admitDevice(device_key_);
  if (!device) {
    ++host_.traffic(user()->name).refused_over_devices;
    SR_LOG(Debug, "session %d: user %s at max_devices; a new device refused", id(), user()->name);
    close(CloseReason::OverLimit);
    return false;
  }
  device_ = *std::move(device);
  return true;
}

void ServerSession::startUot(int version) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
    close(CloseReason::ConnectFailed);
    return;
  }
  const RelayEnv& env = host_.env();
  UotServer::Context context;
  context.loop = &host_.loop();
  context.resolver = &host_.resolver();
  context.preference = env.preference;
  context.target_policy = env.targetPolicy();
  context.stats = &host_.udpStats();
  context.queue_budget = &host_.budgets().queueBytes();
  uot_ = std::make_unique<UotServer>(context, Fd(pair[1]), version);
  SR_LOG(Debug, "session %d: UDP over TCP, version %d", id(), version);
  attachRemote(Fd(pair[0]));
}

void ServerSession::onClose() {
  preauth_.release();  // before the worker (the slot's gate) can go away
  device_.reset();
  uot_.reset();
  if (!admitted_ || state_ == State::Draining || state_ == State::Closing) {
    // A handshake that failed: what the client sent before the close (outline's tcp_probes).
    host_.sample().probe_bytes.observe(static_cast<double>(bytesFromClient()));
  }
}

void ServerSession::reject(uint64_t* counter, CloseReason reason, const char* why) {
  ++*counter;
  drain_reason_ = reason;
  SR_LOG(Debug, "session %d: %s; draining until the handshake deadline", id(), why);
  state_ = State::Draining;
  dir_[kUp].pending_in.release();
  plain_.release();
  // The deadline stays where accept put it: a probe learns nothing from the timing. What the
  // client sends meanwhile is read and dropped (onDiscarded) as its socket reports it.
  queueClientRead();
}

void ServerSession::onDiscarded(long n) {
  if (n > 0) {
    countIn(kClient, static_cast<size_t>(n));
    dir_[kUp].pending_in.clear();  // nothing is kept while draining
    return;
  }
  if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) return;
  // 0: the client gave up first: our FIN answers its FIN, and nothing is left unread. An
  // error ends it the same way.
  close(drain_reason_);
}

void ServerSession::finishDrain() {
  // Deadline: read what is queued, send FIN, keep discarding briefly, then close. close() with
  // unread data would send an RST, which tells a prober more than a FIN does.
  state_ = State::Closing;
  queueClientRead();  // what is queued is read at the end of this iteration
  ::shutdown(sock_[kClient].get(), SHUT_WR);
  timer_.armAfter(kLingerAfterFin);
  watch(kClient, kReadable);
}

void ServerSession::onRemoteConnected() {
  if (decoder2022_) {
    encoder2022_.emplace(crypto::Aead2022StreamEncoder::response(
        *user()->method, *user()->provider, user()->key.bytes(), decoder2022_->salt()));
    if (!encoder2022_->valid()) {
      close(CloseReason::BadStream);
      return;
    }
    dir_[kUp].opener2022 = &*decoder2022_;
    if (!plain_.empty()) {
      dir_[kUp].pending_out.assign(plain_.data(), plain_.size());
      plain_.release();
    }
    dir_[kDown].sealer2022 = &*encoder2022_;
    startRelay();
    return;
  }
  encoder_.emplace(*user()->method, *user()->provider, user()->key.bytes());
  host_.env().salt_filter->insert(encoder_->salt());
  Direction& up = dir_[kUp];
  up.opener = &*decoder_;
  if (!plain_.empty()) {
    up.pending_out.assign(plain_.data(), plain_.size());
    plain_.release();
  }
  dir_[kDown].sealer = &*encoder_;
  startRelay();
}

}  // namespace shadowrelay::relay
