// SPDX-License-Identifier: Apache-2.0
#include "tests/testing/loopback.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace shadowrelay::relay::testing {

SocketAddress loopbackAddress(uint16_t port, const char* ip) {
  return *parseSocketAddress(ip, port);
}

uint16_t portOf(int fd) { return localAddress(fd).port(); }

Fd listenLoopback() {
  ListenOptions options;
  options.reuse_port = false;
  auto fd = listenTcp(loopbackAddress(0), options);
  return fd.ok() ? std::move(*fd) : Fd();
}

Fd connectLoopback(uint16_t port) { return connectLoopbackFrom(nullptr, port); }

Fd connectLoopbackFrom(const char* source, uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Fd();
  if (source != nullptr) {
    auto from = parseSocketAddress(source, 0);
    if (!from.ok() || ::bind(fd.get(), from->get(), from->len) != 0) return Fd();
  }
  const SocketAddress to = loopbackAddress(port);
  if (::connect(fd.get(), to.get(), to.len) != 0) return Fd();
  if (::fcntl(fd.get(), F_SETFL, O_NONBLOCK) != 0) return Fd();
  return fd;
}

Fd tryAccept(int listener) {
  return Fd(::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

void streamPair(Fd* a, Fd* b) {
  int pair[2] = {-1, -1};
  ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair);
  *a = Fd(pair[0]);
  *b = Fd(pair[1]);
}

Fd bindUdpLoopback(const char* ip) {
  auto fd = bindUdp(loopbackAddress(0, ip), /*reuse_port=*/false);
  return fd.ok() ? std::move(*fd) : Fd();
}

bool sendBytes(int fd, std::span<const uint8_t> bytes) {
  const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  return n == static_cast<ssize_t>(bytes.size());
}

bool sendText(int fd, const std::string& text) {
  return sendBytes(fd, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

bool sendDatagram(int fd, std::span<const uint8_t> bytes, const SocketAddress& to) {
  const ssize_t n = ::sendto(fd, bytes.data(), bytes.size(), 0, to.get(), to.len);
  return n == static_cast<ssize_t>(bytes.size());
}

bool readAvailable(int fd, std::vector<uint8_t>* out) {
  uint8_t buf[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      out->insert(out->end(), buf, buf + n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    return false;
  }
}

std::vector<uint8_t> recvDatagram(int fd, SocketAddress* from) {
  std::vector<uint8_t> buf(65536);
  SocketAddress source;
  source.len = sizeof(source.storage);
  const ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT, source.get(), &source.len);
  if (n < 0) return {};
  buf.resize(static_cast<size_t>(n));
  if (from != nullptr) *from = source;
  return buf;
}

bool datagramWaiting(int fd) {
  uint8_t byte;
  return ::recv(fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK) >= 0;
}

}  // namespace shadowrelay::relay::testing
