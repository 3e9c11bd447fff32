// SPDX-License-Identifier: Apache-2.0
#pragma once
// gost-style UDP over TCP on the SOCKS5 control connection (docs/UDP_OVER_TCP.md): after UDP
// ASSOCIATE (or gost's command 0xF3) the client writes its datagrams on the connection as
// socks5::UdpFrames and reads the replies framed the same way.

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/functional/function_ref.h"
#include "relay/socks5.h"
#include "relay/tcp/byte_buffer.h"

namespace shadowrelay::relay {

/// The byte side of the framing, without sockets: splits what the client sends into frames
/// (any split of the stream gives the same frames) and holds the framed replies the socket did
/// not take yet, up to a bound (a full queue drops a reply: UDP is allowed to lose it, and the
/// TCP connection must not grow without end). Memory: under one frame of input, at most
/// kMaxQueuedReplies of output. One loop thread.
class GostUdpFraming {
 public:
  /// The largest frame: LEN FRAG, a 255-byte name's address header, 0xFFFF bytes of data.
  static constexpr size_t kMaxFrame = 3 + 1 + 1 + 255 + 2 + 0xFFFF;
  /// Framed replies parked for a slow client; a reply that does not fit is dropped.
  static constexpr size_t kMaxQueuedReplies = 256 * 1024;

  enum class Feed { Ok, Malformed };

  /// Appends `bytes` and calls `on_frame` with each complete frame, in order (`frame` is the
  /// whole frame, valid during the call). Malformed: a frame that is not one (see
  /// socks5::parseUdpFrame); nothing after it is parsed, and the stream stays malformed.
  Feed feed(std::span<const uint8_t> bytes,
            absl::FunctionRef<void(const socks5::UdpFrame&, std::span<const uint8_t> frame)>
                on_frame);
  /// Bytes of an incomplete frame held.
  size_t partialBytes() const { return in_.size(); }

  /// Parks a whole frame behind the queued ones. False (nothing parked) when it would pass
  /// kMaxQueuedReplies.
  bool queue(std::span<const uint8_t> frame);
  /// What is parked, oldest first; consume() drops what the socket took.
  std::span<const uint8_t> queued() const { return out_.span(); }
  void consume(size_t n) { out_.consume(n); }
  /// Heap bytes held (capacity), for the session's memory accounting.
  size_t capacityBytes() const { return in_.capacity() + out_.capacity(); }

 private:
  ByteBuffer in_;   // the start of a frame not complete yet
  ByteBuffer out_;  // whole frames, the first possibly sent in part
  bool malformed_ = false;
};

}  // namespace shadowrelay::relay
