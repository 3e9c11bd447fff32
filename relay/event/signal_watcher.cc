// SPDX-License-Identifier: Apache-2.0
#include "relay/event/signal_watcher.h"

#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace shadowrelay::relay {

namespace {

sigset_t toSet(const std::vector<int>& signals) {
  sigset_t set;
  sigemptyset(&set);
  for (const int signo : signals) {
    sigaddset(&set, signo);
  }
  return set;
}

}  // namespace

SignalWatcher::SignalWatcher(EventLoop& loop, std::vector<int> signals, Callback cb)
    : signals_(std::move(signals)), cb_(std::move(cb)) {
  const sigset_t set = toSet(signals_);
  fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd_ < 0) {
    error_ = errno;
    return;
  }
  watcher_.emplace(loop, fd_, kReadable, [this](uint32_t) { onReadable(); });
}

SignalWatcher::~SignalWatcher() {
  if (alive_ != nullptr) {
    *alive_ = false;
  }
  watcher_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void SignalWatcher::onReadable() {
  bool alive = true;
  alive_ = &alive;
  // Read until EAGAIN: correct under both trigger modes.
  for (;;) {
    signalfd_siginfo info;
    const ssize_t n = ::read(fd_, &info, sizeof(info));
    if (n != static_cast<ssize_t>(sizeof(info))) {
      break;  // EAGAIN (or EINTR: level-triggered re-reports, edge re-arms on the next signal).
    }
    Callback cb = std::move(cb_);  // Runs from the stack: it may destroy us.
    cb(static_cast<int>(info.ssi_signo));
    if (!alive) {
      return;
    }
    cb_ = std::move(cb);
  }
  alive_ = nullptr;
}

void SignalWatcher::blockInThisThread(const std::vector<int>& signals) {
  const sigset_t set = toSet(signals);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void SignalWatcher::unblockInThisThread(const std::vector<int>& signals) {
  const sigset_t set = toSet(signals);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

const std::vector<int>& SignalWatcher::stopAndReloadSignals() {
  static const std::vector<int>* const kSignals = new std::vector<int>{SIGINT, SIGTERM, SIGHUP};
  return *kSignals;
}

std::unique_ptr<SignalWatcher> SignalWatcher::stopAndReload(EventLoop& loop,
                                                            std::function<void(int signo)> on_stop,
                                                            std::function<void()> on_reload) {
  return std::make_unique<SignalWatcher>(
      loop, stopAndReloadSignals(),
      [on_stop = std::move(on_stop), on_reload = std::move(on_reload)](int signo) {
        if (signo == SIGHUP) {
          if (on_reload) {
            on_reload();
          }
        } else if (on_stop) {
          on_stop(signo);
        }
      });
}

}  // namespace shadowrelay::relay
