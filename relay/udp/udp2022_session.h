// SPDX-License-Identifier: Apache-2.0
#pragma once
// The per-session state of Shadowsocks 2022 UDP (PROTOCOL.md §2.5, §2.6), one per association:
// the server's view of a client session (Udp2022ServerSession, in the server port's table keyed
// by the client's session ID) and a client's own session (Udp2022ClientSession: tunnel -u,
// SOCKS5 UDP ASSOCIATE). Packets are sealed and opened by crypto/aead2022_udp; what is kept
// here is what makes a session: IDs, packet counters and the packet-ID replay windows.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "crypto/address.h"
#include "crypto/aead.h"
#include "crypto/aead2022.h"
#include "crypto/aead2022_udp.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/packet_window.h"
#include "relay/stats/udp_stats.h"

namespace shadowrelay::relay {

/// The server's half of one client session. Created only for a packet that opened and
/// validated; the window moves only for such packets too.
struct Udp2022ServerSession {
  crypto::SessionId client_id{};  // the table key: replies echo it
  crypto::SessionId server_id{};  // ours, random; never the client's
  uint64_t next_packet_id = 0;    // of our replies
  crypto::PacketIdWindow window;  // the client's packet IDs
  /// Seals replies with the session user's PSK (the uPSK behind an identity key; replies carry
  /// no identity header, §2.7).
  std::optional<crypto::Udp2022Sealer> sealer;
};

/// Counts a packet that did not open or validate (`status` not Ok) under its drop reason:
/// stale_timestamp, address (bad address or padding), or open (everything else).
void countDropped2022(crypto::Status2022 status, UdpStats& stats);

/// A new random session ID (session IDs are public: they come from the salt pool).
crypto::SessionId randomSessionId();

/// One client session: a random session ID and a packet counter from 0 for what it sends, and
/// the server sessions that answer it. A server that restarts answers under a new session ID:
/// it is taken, and the one before is kept beside it (with its window) so that its late
/// packets are still filtered; a third is refused while the one before saw traffic within the
/// last minute (§2.5). Not thread-safe: one per association, on its loop.
class Udp2022ClientSession {
 public:
  /// `keys`: Credentials::requestKeys(), iPSK_1..iPSK_k then the user's PSK (k identity
  /// headers in each packet, §2.7; k = 0 for a port with one PSK). Replies are keyed with the
  /// last key alone. `provider` must outlive the session.
  Udp2022ClientSession(const crypto::MethodInfo& method, const crypto::AeadProvider& provider,
                       std::span<const crypto::MasterKey> keys);

  bool valid() const { return sealer_.valid() && opener_.valid(); }
  const crypto::SessionId& id() const { return id_; }

  /// The size of the packet seal() makes for `payload_size` bytes to `target`.
  size_t packetSize(const crypto::SocksAddress& target, size_t payload_size) const;
  /// Seals the session's next packet (timestamp `now`, Unix seconds) into `out`, which must not
  /// overlap `payload`. @return its size, 0 on failure.
  size_t seal(const crypto::SocksAddress& target, std::span<const uint8_t> payload,
              std::span<uint8_t> out, uint64_t now);

  /// Where the sealed body starts in a server packet: open() may write its plaintext there.
  size_t bodyOffset() const { return opener_.bodyOffset(); }

  struct Reply {
    crypto::SocksAddress source;       // where the server got the payload from
    size_t address_size = 0;           // encoded, right before `payload`
    std::span<const uint8_t> payload;  // inside `out`
  };
  /// Opens a server packet into `out` (≥ packet.size() - bodyOffset() bytes; it may be the
  /// packet from bodyOffset() on) and checks it: tag, type 1, timestamp, our client session ID,
  /// a server session we take, a packet ID its window has not seen. A failure counts into
  /// `stats` (open, stale_timestamp, address, session, replayed_packet_id) and returns nullopt.
  std::optional<Reply> open(std::span<const uint8_t> packet, std::span<uint8_t> out, uint64_t now,
                            UdpStats& stats);

 private:
  struct ServerSide {
    crypto::SessionId id{};
    crypto::PacketIdWindow window;
    uint64_t last_seen = 0;  // Unix seconds of its last accepted packet
  };
  /// The server session `id` is, making room for it if it is new; null: refused.
  ServerSide* serverSide(const crypto::SessionId& id, uint64_t now);
  void restart();

  crypto::Udp2022Sealer sealer_;
  crypto::Udp2022Opener opener_;
  crypto::SessionId id_{};
  uint64_t next_packet_id_ = 0;
  std::optional<ServerSide> current_;
  std::optional<ServerSide> previous_;
};

}  // namespace shadowrelay::relay
