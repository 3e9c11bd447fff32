// SPDX-License-Identifier: Apache-2.0
#pragma once
// UDP over TCP ("UoT", sing-box's versions 1 and 2; the layout is in docs/UDP_OVER_TCP.md):
// datagrams carried inside a Shadowsocks TCP stream whose target is a magic name.
//
//   v2 request (client → server, once): isConnect [1] | SOCKS5 address (01 IPv4, 03 name, 04 IPv6)
//   frame, non-connect (v1, and v2 with isConnect = 0):
//       UoT address (00 IPv4, 01 IPv6, 02 name) | port [2] | length [2] | payload
//   frame, connect (v2 with isConnect = 1): length [2] | payload
//
// Pure wire functions first (never read past their input), then UotChannel: the framed stream
// over a socket, buffered both ways.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "crypto/address.h"
#include "relay/context/worker_budgets.h"
#include "relay/event/io_watcher.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay {

class EventLoop;

namespace uot {

inline constexpr std::string_view kMagicV1 = "sp.udp-over-tcp.arpa";
inline constexpr std::string_view kMagicV2 = "sp.v2.udp-over-tcp.arpa";
inline constexpr size_t kMaxPayload = 65535;  // the length field is 16 bits

/// 1 or 2 when `target` is a UoT magic name (any port), else 0.
int versionOf(const crypto::SocksAddress& target);
/// The Shadowsocks target that asks for UoT `version`.
crypto::SocksAddress magicTarget(int version);

enum class Parse { Ok, NeedMore, Invalid };

struct Request {
  bool connect = false;
  crypto::SocksAddress destination;
};
/// A v2 request header from the start of `in`; `*consumed` is its size on Ok. Any non-zero
/// isConnect byte means connect (sing reads it as a Go bool).
Parse parseRequest(std::span<const uint8_t> in, Request* out, size_t* consumed);
/// Returns the header size, 0 if `out` is too small or the address cannot be written.
size_t writeRequest(const Request& request, std::span<uint8_t> out);

struct Frame {
  crypto::SocksAddress address;     // non-connect frames only
  std::span<const uint8_t> payload;  // points into the parsed input
  size_t size = 0;                   // bytes of input the frame took
};
/// One frame from the start of `in`.
Parse parseFrame(std::span<const uint8_t> in, bool connect, Frame* out);
/// Appends one frame to `out`. False (nothing appended) when the payload is over 65535 bytes or
/// the address cannot be written.
bool appendFrame(bool connect, const crypto::SocksAddress& address,
                 std::span<const uint8_t> payload, std::string* out);

}  // namespace uot

/// The datagram side of a UoT stream socket. The server side reads the v2 request first (v1:
/// none); the client side writes its request before the first frame. Datagrams arrive through
/// `on_datagram` with their address (connect mode: the request's destination); `on_closed`
/// runs once, at the end of the loop iteration that saw EOF, a socket error or a framing error,
/// and may destroy the channel.
class UotChannel {
 public:
  using DatagramFn =
      std::function<void(const crypto::SocksAddress& address, std::span<const uint8_t> payload)>;
  using ClosedFn = std::function<void()>;
  /// What waits unsent before datagrams are dropped (UDP semantics: no unbounded queue).
  static constexpr size_t kMaxQueued = 1 << 20;

  /// Server side of a stream that asked for UoT `version` (1 or 2).
  static std::unique_ptr<UotChannel> server(EventLoop& loop, Fd stream, int version,
                                            DatagramFn on_datagram, ClosedFn on_closed);
  /// Client side: `request` goes out first (version 2).
  static std::unique_ptr<UotChannel> client(EventLoop& loop, Fd stream, const uot::Request& request,
                                            DatagramFn on_datagram, ClosedFn on_closed);
  ~UotChannel();
  UotChannel(const UotChannel&) = delete;
  UotChannel& operator=(const UotChannel&) = delete;

  /// Queues one datagram (the address is left out in connect mode). False when dropped: too
  /// big, the queue is full, the budget is spent, or the channel failed.
  bool send(const crypto::SocksAddress& address, std::span<const uint8_t> payload);
  /// Charges what waits unsent to `budget` (the worker's, shared with its other queues) as
  /// well; a datagram it cannot take is dropped and counted in `*dropped_memory`. Call before
  /// the first send().
  void setBudget(ByteBudget* budget, uint64_t* dropped_memory) {
    budget_ = budget;
    dropped_memory_ = dropped_memory;
  }
  /// Server side: whether the request has arrived (v1: always), and what it asked.
  bool haveRequest() const { return have_request_; }
  const uot::Request& request() const { return request_; }
  size_t queuedBytes() const { return out_.size() - out_sent_; }

 private:
  UotChannel(EventLoop& loop, Fd stream, bool have_request, DatagramFn on_datagram,
             ClosedFn on_closed);
  void onEvents(uint32_t events);
  /// False when the channel failed (on_closed has run; `this` may be gone).
  bool readSome();
  bool flush();
  void fail();

  EventLoop& loop_;
  Fd stream_;
  IoWatcher watcher_;
  DatagramFn on_datagram_;
  ClosedFn on_closed_;
  uot::Request request_;
  bool have_request_;
  bool failed_ = false;
  std::string in_;   // a partial frame (or request) carried over between reads
  std::string out_;  // frames not yet written; out_sent_ of them already went
  size_t out_sent_ = 0;
  ByteBudget* budget_ = nullptr;
  uint64_t* dropped_memory_ = nullptr;
  size_t charged_ = 0;  // of budget_: at least queuedBytes()
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace shadowrelay::relay
