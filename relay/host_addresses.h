// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "dns/ip_address.h"

namespace shadowrelay::relay {

/// The addresses of this host's own network interfaces, for the target policy: a service bound
/// to 0.0.0.0 answers on every one of them, so a target there reaches this machine.
///
/// watch() keeps the set current from a thread of its own: it listens for the kernel's address
/// events (netlink RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR) and reads the interfaces again
/// (getifaddrs) after each burst, after lost events (ENOBUFS) and every 60 s regardless. Without
/// netlink it reads them every 2 s.
///
/// contains() may be called from any thread and is the workers' hot path: each thread keeps
/// the set it last saw and only compares a generation number (one atomic load) until the set
/// changes, then copies the new set's pointer under the lock once.
class HostAddresses {
 public:
  /// A set that changes only through replace() (tests, and hosts without netlink).
  explicit HostAddresses(const std::vector<dns::IpAddress>& addresses = {});
  /// Reads the interfaces now (the set is complete when this returns) and follows them until
  /// destroyed.
  static std::unique_ptr<HostAddresses> watch();
  /// Stops and joins the watching thread, if any.
  ~HostAddresses();
  HostAddresses(const HostAddresses&) = delete;
  HostAddresses& operator=(const HostAddresses&) = delete;

  /// Is the address of `addr` (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as its
  /// IPv4) one of this host's? Thread-safe; no lock unless the set changed since this thread's
  /// last call.
  bool contains(const sockaddr* addr) const;
  /// Replaces the set; bumps generation() when it differs. Thread-safe.
  void replace(const std::vector<dns::IpAddress>& addresses);
  /// How many times the set changed (0 at construction).
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  size_t size() const;

 private:
  /// IPv6 bytes; IPv4 as ::ffff:a.b.c.d.
  using Key = std::array<uint8_t, 16>;
  using Set = absl::flat_hash_set<Key>;

  static Set setOf(const std::vector<dns::IpAddress>& addresses);
  static std::string textOf(const Key& key);
  void startWatching();
  void run(int netlink_fd);
  void refresh();

  /// Tells apart instances for the per-thread caches (never reused, unlike addresses).
  const uint64_t id_;
  mutable absl::Mutex mutex_;
  std::shared_ptr<const Set> set_ ABSL_GUARDED_BY(mutex_);
  /// Written under mutex_ together with set_; read without it by contains().
  std::atomic<uint64_t> generation_{0};
  int stop_fd_ = -1;  // eventfd that wakes the watcher to stop
  std::thread watcher_;
};

}  // namespace shadowrelay::relay
