// SPDX-License-Identifier: Apache-2.0
#include "tests/testing/run_loop.h"

#include "tests/testing/loopback.h"

namespace shadowrelay::relay::testing {

bool readAtLeast(EventLoop& loop, int fd, size_t n, std::vector<uint8_t>* got) {
  runUntil(loop, [&] { return !readAvailable(fd, got) || got->size() >= n; });
  return got->size() >= n;
}

std::vector<uint8_t> readSettled(EventLoop& loop, int fd, size_t n) {
  std::vector<uint8_t> got;
  readAtLeast(loop, fd, n, &got);
  runIterations(loop, kSettleIterations);
  readAvailable(fd, &got);
  return got;
}

bool waitForEof(EventLoop& loop, int fd, std::vector<uint8_t>* got,
                std::chrono::milliseconds limit) {
  return runUntil(
      loop, [&] { return !readAvailable(fd, got); }, limit);
}

Fd acceptWithin(EventLoop& loop, int listener) {
  Fd accepted;
  runUntil(loop, [&] {
    accepted = tryAccept(listener);
    return accepted.valid();
  });
  return accepted;
}

std::vector<uint8_t> awaitDatagram(EventLoop& loop, int fd, SocketAddress* from) {
  if (!runUntil(loop, [&] { return datagramWaiting(fd); })) return {};
  return recvDatagram(fd, from);
}

}  // namespace shadowrelay::relay::testing
