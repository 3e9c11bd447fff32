// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "relay/event/event_loop.h"
#include "relay/event/io_watcher.h"

namespace shadowrelay::relay {

/// Delivers signals on a loop through a signalfd it owns. The signals must be blocked in every
/// thread (blockInThisThread() in main before any thread starts; WorkerPool threads also block
/// SIGINT, SIGTERM and SIGHUP), otherwise the kernel delivers them the default way.
/// Loop-thread only; the callback may destroy the watcher.
class SignalWatcher {
 public:
  using Callback = std::function<void(int signo)>;

  SignalWatcher(EventLoop& loop, std::vector<int> signals, Callback cb);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  /// errno of a failed signalfd() (EMFILE, ENFILE, ENOMEM), 0 when watching.
  int error() const { return error_; }
  const std::vector<int>& signals() const { return signals_; }

  static void blockInThisThread(const std::vector<int>& signals);
  static void unblockInThisThread(const std::vector<int>& signals);

  /// {SIGINT, SIGTERM, SIGHUP}: what stopAndReload() watches and main should block.
  static const std::vector<int>& stopAndReloadSignals();
  /// SIGINT and SIGTERM call on_stop(signo) (start a graceful stop); SIGHUP calls on_reload().
  static std::unique_ptr<SignalWatcher> stopAndReload(EventLoop& loop,
                                                      std::function<void(int signo)> on_stop,
                                                      std::function<void()> on_reload);

 private:
  void onReadable();

  const std::vector<int> signals_;
  Callback cb_;
  int fd_ = -1;
  int error_ = 0;
  bool* alive_ = nullptr;  // Points at onReadable()'s flag while it runs.
  std::optional<IoWatcher> watcher_;
};

}  // namespace shadowrelay::relay
