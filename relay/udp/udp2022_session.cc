// SPDX-License-Identifier: Apache-2.0
#include "relay/udp/udp2022_session.h"

#include <limits>

#include "crypto/aead2022.h"
#include "crypto/random_pool.h"

namespace shadowrelay::relay {

namespace {
// A server session that answered within this many seconds is still live: a third one is
// refused meanwhile (2 x the timestamp skew: its packets may still be replayed until then).
constexpr uint64_t kServerSessionLive = 2 * crypto::kMaxTimestampSkew;
}  // namespace

void countDropped2022(crypto::Status2022 status, UdpStats& stats) {
  switch (status) {
    case crypto::Status2022::Ok:
      return;
    case crypto::Status2022::StaleTimestamp:
      ++stats.dropped_stale;
      return;
    case crypto::Status2022::BadAddress:
    case crypto::Status2022::BadHeader:
      ++stats.dropped_address;
      return;
    default:  // auth_failed, bad_type (reflected), bad_length, unknown_user, crypto_error
      ++stats.dropped_open;
      return;
  }
}

crypto::SessionId randomSessionId() {
  crypto::SessionId id;
  crypto::saltBytes(id);
  return id;
}

Udp2022ClientSession::Udp2022ClientSession(const crypto::MethodInfo& method,
                                           const crypto::AeadProvider& provider,
                                           std::span<const crypto::MasterKey> keys)
    : sealer_(method, provider, keys),
      opener_(method, provider, keys.back().bytes(), crypto::kServerHeaderType),
      id_(randomSessionId()) {}

void Udp2022ClientSession::restart() {
  // A new session: the server sees a new client, and old replies name the old ID.
  id_ = randomSessionId();
  next_packet_id_ = 0;
  current_.reset();
  previous_.reset();
}

size_t Udp2022ClientSession::packetSize(const crypto::SocksAddress& target,
                                        size_t payload_size) const {
  crypto::PacketHeader2022 header;
  header.address = target;
  return sealer_.packetSize(header, payload_size);
}

size_t Udp2022ClientSession::seal(const crypto::SocksAddress& target,
                                  std::span<const uint8_t> payload, std::span<uint8_t> out,
                                  uint64_t now) {
  if (next_packet_id_ == std::numeric_limits<uint64_t>::max()) restart();  // §2.5: overflow
  crypto::PacketHeader2022 header;
  header.type = crypto::kClientHeaderType;
  header.session_id = id_;
  header.packet_id = next_packet_id_;
  header.timestamp = now;
  header.address = target;
  const size_t sealed = sealer_.seal(header, payload, out);
  if (sealed != 0) ++next_packet_id_;
  return sealed;
}

Udp2022ClientSession::ServerSide* Udp2022ClientSession::serverSide(const crypto::SessionId& id,
                                                                   uint64_t now) {
  if (current_ && current_->id == id) return &*current_;
  if (previous_ && previous_->id == id) return &*previous_;
  if (previous_ && now < previous_->last_seen + kServerSessionLive) return nullptr;
  // A new server session (the server restarted, or this is its first reply): it becomes the
  // current one; the current one is kept as the one before.
  previous_ = std::move(current_);
  current_.emplace();
  current_->id = id;
  return &*current_;
}

std::optional<Udp2022ClientSession::Reply> Udp2022ClientSession::open(
    std::span<const uint8_t> packet, std::span<uint8_t> out, uint64_t now, UdpStats& stats) {
  const crypto::OpenedPacket2022 opened = opener_.open(packet, out, now);
  if (opened.status != crypto::Status2022::Ok) {
    countDropped2022(opened.status, stats);
    return std::nullopt;
  }
  const crypto::PacketHeader2022& header = opened.header;
  if (header.client_session_id != id_) {
    ++stats.dropped_session;  // an answer to another client session (a reflection, or stale)
    return std::nullopt;
  }
  ServerSide* side = serverSide(header.session_id, now);
  if (side == nullptr) {
    ++stats.dropped_session;  // a third server session while the one before is live
    return std::nullopt;
  }
  if (!side->window.accept(header.packet_id)) {  // a new server session's window takes any ID
    ++stats.dropped_replayed_packet;
    return std::nullopt;
  }
  side->last_seen = now;
  Reply reply;
  reply.source = header.address;
  reply.address_size = header.address.size();
  reply.payload = opened.payload;
  return reply;
}

}  // namespace shadowrelay::relay
