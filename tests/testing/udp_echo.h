// SPDX-License-Identifier: Apache-2.0
#pragma once
// A loopback UDP target on the test's loop: every datagram goes back to its sender unchanged.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "relay/event/event_loop.h"
#include "relay/event/io_watcher.h"
#include "relay/net/socket.h"

namespace shadowrelay::relay::testing {

class UdpEcho {
 public:
  /// Binds 127.0.0.1, port 0, and echoes from `loop`, which must outlive this.
  explicit UdpEcho(EventLoop& loop);
  ~UdpEcho();
  UdpEcho(const UdpEcho&) = delete;
  UdpEcho& operator=(const UdpEcho&) = delete;

  uint16_t port() const { return port_; }
  /// Datagrams received (and echoed), in order.
  const std::vector<std::vector<uint8_t>>& received() const { return received_; }
  /// Where the last one came from.
  const SocketAddress& lastSender() const { return last_sender_; }

 private:
  void onReadable();

  Fd fd_;
  uint16_t port_ = 0;
  IoWatcher watcher_;
  std::vector<std::vector<uint8_t>> received_;
  SocketAddress last_sender_;
};

}  // namespace shadowrelay::relay::testing
