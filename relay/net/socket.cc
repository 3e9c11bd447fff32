// SPDX-License-Identifier: Apache-2.0
#include "relay/net/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace shadowrelay::relay {

void Fd::reset() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  }
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

void SocketAddress::setPort(uint16_t port) {
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
  }
}

std::string SocketAddress::toString() const {
  char text[INET6_ADDRSTRLEN] = {0};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, text,
              sizeof(text));
    return absl::StrCat(text, ":", port());
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, text,
              sizeof(text));
    return absl::StrCat("[", text, "]:", port());
  }
  return "?";
}

std::string ipKey(const SocketAddress& address) {
  if (address.family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.storage);
    return std::string(reinterpret_cast<const char*>(&v4->sin_addr), 4);
  }
  if (address.family() == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
    const char* bytes = reinterpret_cast<const char*>(&v6->sin6_addr);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) return std::string(bytes + 12, 4);
    return std::string(bytes, 16);
  }
  return {};
}

std::string sourceKey(const SocketAddress& address) {
  std::string key = ipKey(address);
  if (key.size() == 16) key.resize(8);  // the /64
  return key;
}

absl::StatusOr<SocketAddress> parseSocketAddress(absl::string_view ip, uint16_t port) {
  SocketAddress out;
  std::string text(ip);
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.len = sizeof(sockaddr_in);
    return out;
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out.len = sizeof(sockaddr_in6);
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat("\"", ip, "\" is not an IP address"));
}

namespace {

void setFlag(int fd, int level, int option, int value = 1) {
  ::setsockopt(fd, level, option, &value, sizeof(value));
}

absl::Status sysError(absl::string_view what, const SocketAddress& address, int err) {
  return absl::UnavailableError(
      absl::StrCat(what, " ", address.toString(), ": ", std::strerror(err)));
}

}  // namespace

int kernelMaxBacklog() {
  int value = 0;
  if (FILE* file = std::fopen("/proc/sys/net/core/somaxconn", "re")) {
    if (std::fscanf(file, "%d", &value) != 1) value = 0;
    std::fclose(file);
  }
  return value > 0 ? value : SOMAXCONN;
}

absl::StatusOr<Fd> listenTcp(const SocketAddress& address, const ListenOptions& options) {
  Fd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fd.valid()) return sysError("socket for", address, errno);
  setFlag(fd.get(), SOL_SOCKET, SO_REUSEADDR);
  if (options.reuse_port) setFlag(fd.get(), SOL_SOCKET, SO_REUSEPORT);
  if (address.family() == AF_INET6) {
    setFlag(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, options.v6_only ? 1 : 0);
  }
  if (::bind(fd.get(), address.get(), address.len) != 0) {
    return sysError("cannot bind", address, errno);
  }
  if (options.fast_open) setFlag(fd.get(), IPPROTO_TCP, TCP_FASTOPEN, 256);
  const int backlog = options.backlog > 0 ? options.backlog : kernelMaxBacklog();
  if (::listen(fd.get(), backlog) != 0) {
    return sysError("cannot listen on", address, errno);
  }
  return fd;
}

absl::StatusOr<Fd> bindUdp(const SocketAddress& address, bool reuse_port) {
  Fd fd(::socket(address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd.valid()) return sysError("socket for", address, errno);
  // No SO_REUSEADDR: on UDP it lets two sockets bind the same address and port (the one bound
  // last takes the unicast datagrams), and a bind to port 0 skips the ports such sockets hold,
  // so a fresh socket could get, and steal, a port somebody is using.
  if (reuse_port) setFlag(fd.get(), SOL_SOCKET, SO_REUSEPORT);
  if (address.family() == AF_INET6) setFlag(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY);
  if (::bind(fd.get(), address.get(), address.len) != 0) {
    return sysError("cannot bind", address, errno);
  }
  return fd;
}

void openReusePortGroup(int fd) { setFlag(fd, SOL_SOCKET, SO_REUSEPORT); }

int connectNonBlocking(const SocketAddress& address, bool fast_open, bool no_delay) {
  int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return -errno;
  if (no_delay) setFlag(fd, IPPROTO_TCP, TCP_NODELAY);
  if (fast_open) setFlag(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT);
  if (::connect(fd, address.get(), address.len) != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

int connectNonBlockingUdp(const SocketAddress& address) {
  int fd = ::socket(address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return -errno;
  if (::connect(fd, address.get(), address.len) != 0) {
    int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

int socketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

void setNoDelay(int fd) { setFlag(fd, IPPROTO_TCP, TCP_NODELAY); }

SocketAddress localAddress(int fd) {
  SocketAddress out;
  out.len = sizeof(out.storage);
  if (::getsockname(fd, out.get(), &out.len) != 0) out.len = 0;
  return out;
}

absl::StatusOr<uint64_t> setFileLimit(uint64_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(absl::StrCat("getrlimit(RLIMIT_NOFILE): ", std::strerror(errno)));
  }
  const rlim_t hard = limit.rlim_max;
  limit.rlim_cur = wanted == 0 ? hard : static_cast<rlim_t>(wanted);
  if (limit.rlim_cur > limit.rlim_max) limit.rlim_max = limit.rlim_cur;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "config: nofile: cannot set the open-file limit to ", wanted, " (hard limit ", hard,
        "; raising it needs CAP_SYS_RESOURCE): ", std::strerror(errno)));
  }
  return static_cast<uint64_t>(limit.rlim_cur);
}

uint64_t raiseFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

}  // namespace shadowrelay::relay
