// SPDX-License-Identifier: Apache-2.0
#pragma once
// A child process kept alive beside the relay: a SIP003 plugin (PROTOCOL.md §3.2). It knows
// nothing of Shadowsocks; relay/plugin/sip003_plugin.h says what to run and with which
// environment.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::relay {

class EventLoop;

struct PluginProcessOptions {
  std::string name;  ///< in the log lines: "plugin obfs-server: <its output>"
  std::string path;  ///< the executable, as execve() takes it; argv[0] too
  /// Set in the child's environment over the inherited one (an earlier value is replaced).
  std::vector<std::pair<std::string, std::string>> env;
  /// The wait before the first restart; doubled after each exit, up to max_backoff.
  std::chrono::milliseconds first_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  /// A run at least this long resets the wait to first_backoff.
  std::chrono::milliseconds stable_after{30000};
  /// stop(): SIGTERM, then SIGKILL when the process is still there after this long.
  std::chrono::milliseconds kill_after{5000};
  /// Counts the restarts (may be shared with a metrics exporter); null: start() makes one.
  std::shared_ptr<std::atomic<uint64_t>> restarts;
};

/// One child process, restarted with exponential backoff whenever it exits, its stdout and
/// stderr logged line by line (control bytes escaped), and at stop() sent SIGTERM, then SIGKILL
/// after kill_after. The child runs in its own process group (a terminal's ^C reaches only us;
/// stop() signals the group) and gets SIGKILL if the thread that started it dies
/// (PR_SET_PDEATHSIG): that thread is this object's, which spawns, reaps and reads on an
/// EventLoop of its own, so the child never outlives it.
/// start(), stop() and the destructor belong to one (the owning) thread; the accessors are
/// thread-safe.
class PluginProcess {
 public:
  /// Starts the thread and the first run. UNAVAILABLE if the process cannot be started at all
  /// (pipe or fork failed; an execve() failure shows as an exit with code 127).
  static absl::StatusOr<std::unique_ptr<PluginProcess>> start(PluginProcessOptions options);
  /// stop().
  ~PluginProcess();
  PluginProcess(const PluginProcess&) = delete;
  PluginProcess& operator=(const PluginProcess&) = delete;

  /// SIGTERM to the process group, SIGKILL after kill_after, reaps the child, logs its last
  /// output and joins the thread. Idempotent.
  void stop();

  /// Runs started after an exit (the first run is not counted). Shared, so that a metrics
  /// scrape may read it after this object is gone.
  std::shared_ptr<const std::atomic<uint64_t>> restartCounter() const { return restarts_; }
  uint64_t restarts() const { return restarts_->load(); }
  /// Exits seen so far (every run's end, restarted or not).
  uint64_t exits() const { return exits_.load(); }
  /// The running child's pid; 0 between an exit and the restart.
  pid_t pid() const { return pid_.load(); }

  /// `line` for the log: bytes below 0x20 and 0x7f as \xNN, a trailing \r dropped.
  static std::string escapeLine(absl::string_view line);

 private:
  class Runner;

  PluginProcess() = default;

  // Made and freed on thread_, which runs the loop; set before start() returns.
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Runner> runner_;
  std::thread thread_;
  std::shared_ptr<std::atomic<uint64_t>> restarts_;
  std::atomic<uint64_t> exits_{0};
  std::atomic<pid_t> pid_{0};
  bool stopped_ = false;
};

}  // namespace shadowrelay::relay
