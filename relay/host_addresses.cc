// SPDX-License-Identifier: Apache-2.0
#include "relay/host_addresses.h"

#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_join.h"
#include "relay/log.h"

namespace shadowrelay::relay {
namespace {

constexpr int kResyncMs = 60'000;            // with netlink: a safety net for anything missed
constexpr int kPollWithoutEventsMs = 2'000;  // without netlink: how stale the set may get
constexpr int kMaxReadsPerWake = 1024;       // drains a burst of events without spinning on it

std::atomic<uint64_t> g_next_id{1};

struct ThreadCache {
  uint64_t owner = 0;  // HostAddresses::id_ of the set below
  uint64_t generation = 0;
  std::shared_ptr<const void> set;  // that owner's Set
};
thread_local ThreadCache t_cache;

std::vector<dns::IpAddress> readInterfaces() {
  std::vector<dns::IpAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* it = list; it != nullptr; it = it->ifa_next) {
    if (it->ifa_addr == nullptr) continue;
    const int family = it->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    const socklen_t len = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (auto ip = dns::IpAddress::fromSockaddr(it->ifa_addr, len)) out.push_back(*ip);
  }
  ::freeifaddrs(list);
  return out;
}

/// A netlink socket that receives the kernel's address additions and removals; -errno if the
/// kernel or a sandbox refuses one.
int openAddressEvents() {
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) return -errno;
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

/// Reads what is queued; the messages themselves do not matter (the list is read again).
void drainEvents(int fd) {
  char buf[8192];
  for (int i = 0; i < kMaxReadsPerWake; ++i) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: all read; ENOBUFS: some were lost, the re-read covers them
  }
}

}  // namespace

HostAddresses::HostAddresses(const std::vector<dns::IpAddress>& addresses)
    : id_(g_next_id.fetch_add(1, std::memory_order_relaxed)),
      set_(std::make_shared<const Set>(setOf(addresses))) {}

HostAddresses::~HostAddresses() {
  if (watcher_.joinable()) {
    const uint64_t one = 1;
    while (::write(stop_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    watcher_.join();
  }
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

std::unique_ptr<HostAddresses> HostAddresses::watch() {
  auto host = std::make_unique<HostAddresses>();
  host->startWatching();
  return host;
}

void HostAddresses::startWatching() {
  // Subscribed before the first read, so that no change falls between the two.
  const int events = openAddressEvents();
  refresh();
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) {  // cannot be stopped: keep the first read only
    const int err = errno;
    if (events >= 0) ::close(events);
    SR_LOG(Warn, "host addresses: eventfd: %s; interface changes are not followed",
           std::strerror(err));
    return;
  }
  if (events < 0) {
    SR_LOG(Warn, "host addresses: no netlink socket (%s); reading the interfaces every %d s",
           std::strerror(-events), kPollWithoutEventsMs / 1000);
  }
  // The thread takes no signal (SIGTERM belongs to the main thread's loop): it starts with
  // every signal blocked, inherited from this thread's mask for the moment of its creation.
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  watcher_ = std::thread([this, events] { run(events); });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void HostAddresses::run(int netlink_fd) {
  log::setThreadName("host-addresses");
  pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {netlink_fd, POLLIN, 0}};
  const nfds_t count = netlink_fd >= 0 ? 2 : 1;
  const int timeout_ms = netlink_fd >= 0 ? kResyncMs : kPollWithoutEventsMs;
  for (;;) {
    const int n = ::poll(fds, count, timeout_ms);
    if (n < 0 && errno != EINTR) {
      SR_LOG(Warn, "host addresses: poll: %s; interface changes are no longer followed",
             std::strerror(errno));
      break;
    }
    if (n > 0 && fds[0].revents != 0) break;
    if (n > 0 && count == 2 && fds[1].revents != 0) drainEvents(netlink_fd);
    refresh();
  }
  if (netlink_fd >= 0) ::close(netlink_fd);
}

void HostAddresses::refresh() { replace(readInterfaces()); }

std::string HostAddresses::textOf(const Key& key) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(key.data(), kMapped, sizeof(kMapped)) == 0) {
    return dns::IpAddress::v4({key[12], key[13], key[14], key[15]}).toString();
  }
  return dns::IpAddress::v6(key).toString();
}

HostAddresses::Set HostAddresses::setOf(const std::vector<dns::IpAddress>& addresses) {
  Set set;
  for (const dns::IpAddress& ip : addresses) {
    Key key{};
    if (ip.isV4()) {
      key[10] = key[11] = 0xff;
      std::memcpy(key.data() + 12, ip.data(), 4);
    } else {
      std::memcpy(key.data(), ip.data(), 16);
    }
    set.insert(key);
  }
  return set;
}

void HostAddresses::replace(const std::vector<dns::IpAddress>& addresses) {
  std::shared_ptr<const Set> next = std::make_shared<const Set>(setOf(addresses));
  std::shared_ptr<const Set> previous;
  {
    absl::MutexLock lock(&mutex_);
    if (*next == *set_) return;
    previous = std::exchange(set_, next);
    generation_.fetch_add(1, std::memory_order_release);
  }
  if (!log::enabled(log::Level::Debug)) return;
  std::vector<std::string> changes;
  for (const Key& key : *next) {
    if (!previous->contains(key)) changes.push_back("+" + textOf(key));
  }
  for (const Key& key : *previous) {
    if (!next->contains(key)) changes.push_back("-" + textOf(key));
  }
  std::sort(changes.begin(), changes.end());
  SR_LOG(Debug, "host addresses (refused as targets): %d, %s", next->size(),
         absl::StrJoin(changes, " "));
}

size_t HostAddresses::size() const {
  absl::MutexLock lock(&mutex_);
  return set_->size();
}

bool HostAddresses::contains(const sockaddr* addr) const {
  Key key{};
  if (addr->sa_family == AF_INET) {
    key[10] = key[11] = 0xff;
    std::memcpy(key.data() + 12, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, 4);
  } else if (addr->sa_family == AF_INET6) {
    std::memcpy(key.data(), &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, 16);
  } else {
    return false;
  }
  ThreadCache& cache = t_cache;
  if (cache.owner != id_ || cache.generation != generation_.load(std::memory_order_acquire)) {
    absl::MutexLock lock(&mutex_);
    cache.set = set_;
    cache.generation = generation_.load(std::memory_order_relaxed);
    cache.owner = id_;
  }
  return static_cast<const Set*>(cache.set.get())->contains(key);
}

}  // namespace shadowrelay::relay
