// SPDX-License-Identifier: Apache-2.0
#include "relay/plugin/plugin_process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "relay/event/event_loop.h"
#include "relay/event/io_watcher.h"
#include "relay/event/timer.h"
#include "relay/log.h"
#include "relay/net/socket.h"

extern char** environ;

namespace shadowrelay::relay {

namespace {

// A line longer than this is logged in pieces (a plugin that never ends its lines cannot grow
// our buffer).
constexpr size_t kMaxLine = 4096;
// Without a pidfd (kernels before 5.3, or a seccomp filter that refuses it), exits are polled.
constexpr std::chrono::milliseconds kReapPoll{100};

std::string exitText(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return absl::StrCat("ended with status ", status);
}

// In the child, between fork() and execve(): async-signal-safe calls only (the parent has other
// threads, whose locks may be held forever here). Everything it needs was built before fork().
[[noreturn]] void execChild(const char* path, char* const argv[], char* const envp[], int out_fd,
                            pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent thread died before prctl()
  ::setpgid(0, 0);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the relay blocks SIGTERM/SIGINT/SIGHUP
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);  // SIGPIPE: ignored
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(out_fd, STDERR_FILENO);
  ::syscall(SYS_close_range, 3U, ~0U, 0U);  // the relay's sockets are not the plugin's business
  ::execve(path, argv, envp);
  ::_exit(127);
}

}  // namespace

/// Everything that happens on the plugin thread's loop: spawn, reap, restart, read, stop.
class PluginProcess::Runner {
 public:
  Runner(PluginProcess& owner, EventLoop& loop, PluginProcessOptions options)
      : owner_(owner),
        loop_(loop),
        options_(std::move(options)),
        backoff_(options_.first_backoff),
        restart_timer_(loop, [this] { restart(); }),
        kill_timer_(loop, [this] { killNow(); }),
        reap_timer_(loop, [this] { reapIfExited(); }) {
    buildEnvironment();
  }

  ~Runner() {
    pid_watcher_.reset();
    output_watcher_.reset();
  }

  /// The output pipe, then the first run.
  absl::Status begin() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return absl::UnavailableError(absl::StrCat("plugin ", options_.name, ": pipe: ",
                                                 std::strerror(errno)));
    }
    // One pipe for every run: we keep its write end, so it never reports EOF and a restart
    // needs no new reader.
    out_read_ = Fd(fds[0]);
    out_write_ = Fd(fds[1]);
    ::fcntl(out_read_.get(), F_SETFL, ::fcntl(out_read_.get(), F_GETFL) | O_NONBLOCK);
    output_watcher_.emplace(loop_, out_read_.get(), kReadable, [this](uint32_t) { readOutput(); });
    return spawn();
  }

  void beginStop() {
    stopping_ = true;
    restart_timer_.cancel();
    if (pid_ == 0) {
      finish();
      return;
    }
    signalGroup(SIGTERM);
    kill_timer_.armAfter(options_.kill_after);
  }

 private:
  void buildEnvironment() {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const absl::string_view entry(*e);
      const absl::string_view key = entry.substr(0, entry.find('='));
      const bool replaced = std::any_of(options_.env.begin(), options_.env.end(),
                                        [key](const auto& kv) { return kv.first == key; });
      if (!replaced) env_.emplace_back(entry);
    }
    for (const auto& [key, value] : options_.env) env_.push_back(absl::StrCat(key, "=", value));
  }

  absl::Status spawn() {
    std::vector<char*> envp;
    for (std::string& entry : env_) envp.push_back(entry.data());
    envp.push_back(nullptr);
    char* argv[] = {options_.path.data(), nullptr};
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      return absl::UnavailableError(absl::StrCat("plugin ", options_.name, ": fork: ",
                                                 std::strerror(errno)));
    }
    if (pid == 0) execChild(options_.path.c_str(), argv, envp.data(), out_write_.get(), parent);
    ::setpgid(pid, pid);  // also here: signalGroup() may run before the child's own setpgid
    pid_ = pid;
    owner_.pid_.store(pid);
    started_at_ = loop_.readClock();
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd >= 0) {
      pidfd_ = Fd(pidfd);
      pid_watcher_.emplace(loop_, pidfd, kReadable, [this](uint32_t) { reapIfExited(); });
    } else {
      reap_timer_.armAfter(kReapPoll);
    }
    SR_LOG(Info, "plugin %s started (pid %d)", options_.name, pid);
    return absl::OkStatus();
  }

  void reapIfExited() {
    int status = 0;
    const pid_t got = ::waitpid(pid_, &status, WNOHANG);
    if (got == 0 || (got < 0 && errno == EINTR)) {
      if (!pid_watcher_) reap_timer_.armAfter(kReapPoll);
      return;
    }
    const auto ran = loop_.readClock() - started_at_;
    pid_watcher_.reset();
    pidfd_.reset();
    const pid_t pid = std::exchange(pid_, 0);
    owner_.pid_.store(0);
    owner_.exits_.fetch_add(1);
    readOutput();  // its last words before ours
    if (stopping_) {
      SR_LOG(Info, "plugin %s (pid %d) %s", options_.name, pid, exitText(status));
      finish();
      return;
    }
    if (ran >= options_.stable_after) backoff_ = options_.first_backoff;
    SR_LOG(Warn, "plugin %s (pid %d) %s after %.1f s; restarting in %.1f s", options_.name, pid,
           exitText(status), std::chrono::duration<double>(ran).count(),
           std::chrono::duration<double>(backoff_).count());
    restart_timer_.armAfter(backoff_);
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
  }

  void restart() {
    owner_.restarts_->fetch_add(1);
    if (absl::Status s = spawn(); !s.ok()) {
      SR_LOG(Warn, "%s; trying again in %.1f s", s.message(),
             std::chrono::duration<double>(backoff_).count());
      restart_timer_.armAfter(backoff_);
      backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    }
  }

  void signalGroup(int sig) {
    // The group first (a plugin's own helpers too); the pid alone if the group is not there yet.
    if (::kill(-pid_, sig) != 0) ::kill(pid_, sig);
  }

  void killNow() {
    if (pid_ == 0) return;
    SR_LOG(Warn, "plugin %s (pid %d) still running %.1f s after SIGTERM: SIGKILL", options_.name,
           pid_, std::chrono::duration<double>(options_.kill_after).count());
    signalGroup(SIGKILL);
  }

  void finish() {
    kill_timer_.cancel();
    reap_timer_.cancel();
    readOutput();
    flushPartial();
    loop_.stop();
  }

  void readOutput() {
    char buf[4096];
    for (int i = 0; i < 64; ++i) {  // bounded: the rest comes with the next readable event
      const ssize_t n = ::read(out_read_.get(), buf, sizeof(buf));
      if (n <= 0) return;  // EAGAIN: all read for now (never EOF: we hold the write end)
      partial_.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
        logLine(absl::string_view(partial_).substr(start, nl - start));
      }
      partial_.erase(0, start);
      while (partial_.size() >= kMaxLine) {
        logLine(absl::string_view(partial_).substr(0, kMaxLine));
        partial_.erase(0, kMaxLine);
      }
    }
  }

  void flushPartial() {
    if (!partial_.empty()) logLine(partial_);
    partial_.clear();
  }

  void logLine(absl::string_view line) {
    SR_LOG(Info, "plugin %s: %s", options_.name, escapeLine(line));
  }

  PluginProcess& owner_;
  EventLoop& loop_;
  PluginProcessOptions options_;
  std::vector<std::string> env_;  // "KEY=value", built once: fork() children read it
  std::chrono::milliseconds backoff_;
  bool stopping_ = false;
  pid_t pid_ = 0;
  TimePoint started_at_;
  Fd out_read_;
  Fd out_write_;
  Fd pidfd_;
  std::string partial_;  // output after the last newline
  Timer restart_timer_;
  Timer kill_timer_;
  Timer reap_timer_;
  std::optional<IoWatcher> output_watcher_;
  std::optional<IoWatcher> pid_watcher_;
};

absl::StatusOr<std::unique_ptr<PluginProcess>> PluginProcess::start(
    PluginProcessOptions options) {
  std::unique_ptr<PluginProcess> process(new PluginProcess());
  process->restarts_ = options.restarts != nullptr ? options.restarts
                                                   : std::make_shared<std::atomic<uint64_t>>(0);
  absl::Status began;
  absl::Notification started;
  PluginProcess* self = process.get();
  // The loop and the runner are made, used and freed on the thread (the loop belongs to the
  // thread that constructs it).
  process->thread_ = std::thread([self, &options, &began, &started] {
    log::setThreadName("plugin");
    self->loop_ = std::make_unique<EventLoop>();
    self->runner_ = std::make_unique<Runner>(*self, *self->loop_, std::move(options));
    began = self->runner_->begin();  // spawned from this thread: PR_SET_PDEATHSIG is tied to it
    const bool ok = began.ok();
    started.Notify();  // `options`, `began` and `started` are not touched after this
    if (ok) self->loop_->run();
    self->runner_.reset();
    self->loop_.reset();
  });
  started.WaitForNotification();
  if (!began.ok()) {
    process->thread_.join();
    process->stopped_ = true;
    return began;
  }
  return process;
}

PluginProcess::~PluginProcess() { stop(); }

void PluginProcess::stop() {
  if (stopped_) return;
  stopped_ = true;
  Runner* runner = runner_.get();  // set before start() returned; freed only after beginStop()
  loop_->post([runner] { runner->beginStop(); });
  thread_.join();
}

std::string PluginProcess::escapeLine(absl::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(line.size());
  for (const char ch : line) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace shadowrelay::relay
