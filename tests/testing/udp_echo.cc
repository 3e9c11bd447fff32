// SPDX-License-Identifier: Apache-2.0
#include "tests/testing/udp_echo.h"

#include <sys/socket.h>

#include "tests/testing/loopback.h"

namespace shadowrelay::relay::testing {

UdpEcho::UdpEcho(EventLoop& loop)
    : fd_(bindUdpLoopback()),
      port_(portOf(fd_.get())),
      watcher_(loop, fd_.get(), kReadable, [this](uint32_t) { onReadable(); }) {}

UdpEcho::~UdpEcho() { watcher_.willCloseFd(); }

void UdpEcho::onReadable() {
  // At most a few per event: a test sends a handful.
  for (int i = 0; i < 16; ++i) {
    SocketAddress from;
    std::vector<uint8_t> datagram = recvDatagram(fd_.get(), &from);
    if (from.len == 0) return;
    sendDatagram(fd_.get(), datagram, from);
    received_.push_back(std::move(datagram));
    last_sender_ = from;
  }
}

}  // namespace shadowrelay::relay::testing
