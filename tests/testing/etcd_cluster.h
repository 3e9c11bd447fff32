// SPDX-License-Identifier: Apache-2.0
#pragma once
// A real etcd cluster (Debian's /usr/bin/etcd, 3 members by default) on 127.0.0.1, on free
// ports, in a fresh directory under $TEST_TMPDIR, for the etcd client's and the store's tests.
// Members run with --heartbeat-interval 50 --election-timeout 500 (a leader is replaced in
// about 0.6 s; docs/etcd/RESEARCH.md §1). Not thread-safe: drive it from the test's thread.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/temp_dir.h"

namespace shadowrelay::testing {

struct CommandResult {
  int exit_code = -1;  // -1: killed (signal or timeout)
  std::string output;  // stdout and stderr together
};

/// Runs `argv` (argv[0] an absolute path) with `env` as its whole environment (PATH is added),
/// collecting its output; killed with SIGKILL after `timeout`.
absl::StatusOr<CommandResult> runCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         const std::vector<std::string>& env = {});

/// A CA and certificates made with the openssl CLI: the server's for 127.0.0.1 and localhost,
/// and a client certificate (CN "root"). PEM file paths.
struct EtcdPki {
  std::string ca_cert, server_cert, server_key, client_cert, client_key;
};
absl::StatusOr<EtcdPki> makeEtcdPki(const std::string& dir);

class EtcdCluster {
 public:
  struct Options {
    int members = 3;
    /// More etcd flags for every member, e.g. "--auth-token-ttl=1".
    std::vector<std::string> extra_flags;
    /// Set: client URLs are https with this PKI, client certificates required.
    const EtcdPki* tls = nullptr;
  };

  /// Starts the members and waits (at most 20 s) until every one is healthy.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> start(const Options& options);
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> start() { return start(Options{}); }
  /// Kills every member (SIGKILL) and removes the directory.
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  /// "http://127.0.0.1:PORT" (https with TLS) of member i, or of all members in order.
  std::string endpoint(int i) const;
  std::vector<std::string> endpoints() const;
  bool running(int i) const { return members_[i].pid > 0; }
  pid_t pid(int i) const { return members_[i].pid; }

  /// SIGKILL member i and reap it.
  absl::Status kill(int i);
  /// SIGTERM member i (a leader hands over first) and wait until it has exited (SIGKILL after
  /// 10 s). A member started again before its old process is gone cannot bind its ports.
  absl::Status stop(int i);
  /// Starts stopped member i again on its data directory (and its ports); does not wait.
  absl::Status restart(int i);
  /// stop() every running member (in parallel: SIGTERM all, then wait for all).
  absl::Status stopAll();
  /// restart() every stopped member, then waitHealthy().
  absl::Status startAll();
  /// Waits until every running member answers `etcdctl endpoint health`.
  absl::Status waitHealthy(absl::Duration timeout = absl::Seconds(20));

  /// The index of the member that is the leader now (Maintenance.Status of the running ones).
  absl::StatusOr<int> leader();
  /// Finds the leader and SIGKILLs it; returns its index.
  absl::StatusOr<int> killLeader();

  /// etcdctl (API 3) against the running members, with the TLS flags and the credentials of
  /// setCredentials(); `args` e.g. {"put", "k", "v"}.
  absl::StatusOr<CommandResult> etcdctl(const std::vector<std::string>& args,
                                        absl::Duration timeout = absl::Seconds(10));
  /// "user:password" for later etcdctl calls (after `auth enable`); empty: none.
  void setCredentials(std::string user_password) { credentials_ = std::move(user_password); }
  /// Compacts the history up to `revision` (etcdctl compact).
  absl::Status compact(int64_t revision);

  const std::string& dir() const { return dir_.path(); }
  /// The last lines of member i's log, for failure messages.
  std::string logTail(int i, size_t bytes = 2000) const;

 private:
  struct Member {
    std::string name;
    uint16_t client_port = 0;
    uint16_t peer_port = 0;
    pid_t pid = -1;
  };

  explicit EtcdCluster(const Options& options);
  absl::Status spawn(int i);
  std::vector<std::string> memberArgs(int i) const;
  std::vector<std::string> etcdctlArgs(const std::vector<int>& members,
                                       absl::Duration timeout) const;
  std::vector<int> runningMembers() const;
  absl::Status waitExit(int i, absl::Duration timeout);

  TempDir dir_;
  std::vector<std::string> extra_flags_;
  const EtcdPki* tls_;
  std::vector<Member> members_;
  std::string credentials_;
};

}  // namespace shadowrelay::testing
