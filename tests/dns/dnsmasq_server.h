// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::dns::testing {

/// A dnsmasq child process serving only the records given (no upstream, no /etc/hosts) on
/// 127.0.0.1, with every query logged to a file so that tests can count what reached it.
/// Names under "test" that have no record get NXDOMAIN; names outside "test" get REFUSED.
/// The destructor kills and reaps the process.
class DnsmasqServer {
 public:
  struct Options {
    /// Record options, e.g. "--address=/a.test/10.0.0.1", "--host-record=h.test,10.0.0.2,fd00::2".
    std::vector<std::string> records;
    /// TTL of the records that do not give their own (--local-ttl).
    int local_ttl = 1;
    /// 0: pick a free port.
    uint16_t port = 0;
  };

  /// Starts dnsmasq and waits (at most 5 s) until it answers a query.
  static absl::StatusOr<std::unique_ptr<DnsmasqServer>> start(const Options& options);

  ~DnsmasqServer();
  DnsmasqServer(const DnsmasqServer&) = delete;
  DnsmasqServer& operator=(const DnsmasqServer&) = delete;

  uint16_t port() const { return port_; }
  /// "127.0.0.1:PORT", for ResolverOptions::servers.
  std::string serverAddress() const;
  /// Queries for `name` logged so far; `type` "A", "AAAA", ... or empty for any type.
  int queryCount(absl::string_view name, absl::string_view type = "") const;
  /// Every query logged so far (readiness probes excluded).
  int totalQueryCount() const;
  std::string logContents() const;

 private:
  DnsmasqServer(pid_t pid, uint16_t port, std::string log_path);
  static absl::StatusOr<std::unique_ptr<DnsmasqServer>> startOnPort(const Options& options,
                                                                    uint16_t port);
  bool answersProbe() const;
  bool exited();

  pid_t pid_;
  const uint16_t port_;
  const std::string log_path_;
};

/// A UDP socket on 127.0.0.1 that receives queries and never answers.
class SilentDnsServer {
 public:
  SilentDnsServer();
  ~SilentDnsServer();
  SilentDnsServer(const SilentDnsServer&) = delete;
  SilentDnsServer& operator=(const SilentDnsServer&) = delete;

  uint16_t port() const { return port_; }
  std::string serverAddress() const;
  /// Datagrams received so far (drains the socket).
  int receivedCount();

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  int received_ = 0;
};

}  // namespace shadowrelay::dns::testing
