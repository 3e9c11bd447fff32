// SPDX-License-Identifier: Apache-2.0
#pragma once
// Sockets for the relay: an owning fd, listeners and non-blocking connects. Thin wrappers over
// the Linux calls; errors come back as errno values or absl::Status naming the address.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::relay {

/// Owns one file descriptor; closes it on destruction (muduo's Socket).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset();

 private:
  int fd_ = -1;
};

/// A socket address with its length.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  void setPort(uint16_t port);
  /// "1.2.3.4:80" or "[::1]:80".
  std::string toString() const;
};

/// An IPv4 or IPv6 literal and a port ("0.0.0.0", "::1"); error for anything else.
absl::StatusOr<SocketAddress> parseSocketAddress(absl::string_view ip, uint16_t port);

/// The IP of `address` as raw bytes (4 for IPv4 and IPv4-mapped IPv6, 16 for IPv6; empty for
/// other families): a map key for "the same client".
std::string ipKey(const SocketAddress& address);
/// The source network of `address` as raw bytes: its IPv4 address (4 bytes; an IPv4-mapped
/// IPv6 address counts as the IPv4) or its IPv6 /64 (8 bytes); empty for other families. One
/// client machine, for per-source budgets and a user's devices.
std::string sourceKey(const SocketAddress& address);

struct ListenOptions {
  bool reuse_port = true;
  bool fast_open = false;
  /// 0: the kernel's maximum (net.core.somaxconn): a burst of thousands of connects must not
  /// overflow the queue while the loop is busy (docs/PERFORMANCE.md, "Keep-alive at scale").
  int backlog = 0;
  bool v6_only = true;  // an IPv6 listener does not also take IPv4
};

/// net.core.somaxconn (/proc/sys/net/core/somaxconn), or SOMAXCONN when it cannot be read.
int kernelMaxBacklog();

/// A bound, listening, non-blocking TCP socket. The error names the address.
absl::StatusOr<Fd> listenTcp(const SocketAddress& address, const ListenOptions& options);

/// A bound non-blocking UDP socket. SO_REUSEPORT when asked (it may join the same user's
/// SO_REUSEPORT sockets on that port); never SO_REUSEADDR, with which a bind, even port 0's
/// pick, may share the port of another SO_REUSEADDR socket. The error names the address.
absl::StatusOr<Fd> bindUdp(const SocketAddress& address, bool reuse_port);

/// Sets SO_REUSEPORT on a socket bound without it: later SO_REUSEPORT sockets of this user may
/// then bind its port and share its datagrams (a group whose first bind was exclusive).
void openReusePortGroup(int fd);

/// Starts a non-blocking connect. Returns the socket (connect in progress or done) or -errno.
/// With `fast_open`, TCP_FASTOPEN_CONNECT defers the SYN to the first write, which carries data.
int connectNonBlocking(const SocketAddress& address, bool fast_open, bool no_delay);

/// A non-blocking UDP socket connected to `address` (replies from elsewhere are filtered by the
/// kernel). Returns the fd or -errno.
int connectNonBlockingUdp(const SocketAddress& address);

/// The pending error of a socket (SO_ERROR), 0 if none.
int socketError(int fd);

void setNoDelay(int fd);

/// The local address of a socket.
SocketAddress localAddress(int fd);

/// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
uint64_t raiseFileLimit();

/// Sets RLIMIT_NOFILE's soft limit to `wanted` (0: the hard limit); above the hard limit the hard
/// limit is raised too, which needs CAP_SYS_RESOURCE. Returns the soft limit now; the error
/// names `nofile` and the hard limit.
absl::StatusOr<uint64_t> setFileLimit(uint64_t wanted);

}  // namespace shadowrelay::relay
