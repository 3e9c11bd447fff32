// SPDX-License-Identifier: Apache-2.0
#include "tests/testing/etcd_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace shadowrelay::testing {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";
constexpr char kEtcdctl[] = "/usr/bin/etcdctl";
constexpr char kOpenssl[] = "/usr/bin/openssl";
constexpr char kPath[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

void sleepFor(absl::Duration d) { std::this_thread::sleep_for(absl::ToChronoNanoseconds(d)); }

/// `count` distinct TCP ports that were free on 127.0.0.1 a moment ago (all bound at once).
absl::StatusOr<std::vector<uint16_t>> freePorts(int count) {
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  absl::Status status;
  for (int i = 0; i < count && status.ok(); ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
      status = absl::InternalError("cannot pick a free port");
    } else {
      ports.push_back(ntohs(sin.sin_port));
    }
    if (fd >= 0) {
      fds.push_back(fd);
    }
  }
  for (int fd : fds) {
    ::close(fd);
  }
  if (!status.ok()) {
    return status;
  }
  return ports;
}

struct CStrings {
  explicit CStrings(std::vector<std::string> s) : strings(std::move(s)) {
    for (std::string& item : strings) {
      pointers.push_back(item.data());
    }
    pointers.push_back(nullptr);
  }
  std::vector<std::string> strings;
  std::vector<char*> pointers;
};

/// fork + exec with stdout and stderr on `out_fd`; the child dies with the test (PDEATHSIG).
/// Everything the child touches is prepared before fork (only async-signal-safe calls after).
absl::StatusOr<pid_t> spawnProcess(const std::vector<std::string>& argv,
                                   std::vector<std::string> env, int out_fd) {
  env.push_back(kPath);
  CStrings args(argv);
  CStrings envp(std::move(env));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(126);
    }
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(out_fd, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      ::dup2(devnull, STDIN_FILENO);
    }
    ::execve(args.pointers[0], args.pointers.data(), envp.pointers.data());
    ::_exit(127);
  }
  return pid;
}

std::string readTail(const std::string& path, size_t bytes) {
  std::string text = readText(path);
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

}  // namespace

absl::StatusOr<CommandResult> runCommand(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         const std::vector<std::string>& env) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError("pipe2");
  }
  absl::StatusOr<pid_t> pid = spawnProcess(argv, env, pipe_fds[1]);
  ::close(pipe_fds[1]);
  if (!pid.ok()) {
    ::close(pipe_fds[0]);
    return pid.status();
  }
  CommandResult result;
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      break;
    }
    pollfd p{pipe_fds[0], POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready <= 0) {
      continue;  // the deadline check above ends it
    }
    char buf[4096];
    const ssize_t n = ::read(pipe_fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;  // EOF: the process closed its output
    }
    result.output.append(buf, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  if (timed_out) {
    ::kill(*pid, SIGKILL);
  }
  int status = 0;
  while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) && !timed_out ? WEXITSTATUS(status) : -1;
  if (timed_out) {
    result.output += absl::StrCat("\n[killed after ", absl::FormatDuration(timeout), "]");
  }
  return result;
}

absl::StatusOr<EtcdPki> makeEtcdPki(const std::string& dir) {
  EtcdPki pki;
  pki.ca_cert = dir + "/ca.crt";
  pki.server_cert = dir + "/server.crt";
  pki.server_key = dir + "/server.key";
  pki.client_cert = dir + "/client.crt";
  pki.client_key = dir + "/client.key";
  const std::string ca_key = dir + "/ca.key";
  writeText(dir + "/server.ext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "extendedKeyUsage=serverAuth,clientAuth\n");
  writeText(dir + "/client.ext", "extendedKeyUsage=clientAuth\n");
  const std::vector<std::vector<std::string>> steps = {
      {kOpenssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", ca_key, "-out", pki.ca_cert, "-days", "1", "-subj",
       "/CN=shadowrelay-test-ca"},
      {kOpenssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", pki.server_key, "-out", dir + "/server.csr", "-subj", "/CN=etcd"},
      {kOpenssl, "x509", "-req", "-in", dir + "/server.csr", "-CA", pki.ca_cert, "-CAkey", ca_key,
       "-CAcreateserial", "-out", pki.server_cert, "-days", "1", "-extfile", dir + "/server.ext"},
      {kOpenssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", pki.client_key, "-out", dir + "/client.csr", "-subj", "/CN=root"},
      {kOpenssl, "x509", "-req", "-in", dir + "/client.csr", "-CA", pki.ca_cert, "-CAkey", ca_key,
       "-CAcreateserial", "-out", pki.client_cert, "-days", "1", "-extfile", dir + "/client.ext"},
  };
  for (const std::vector<std::string>& step : steps) {
    absl::StatusOr<CommandResult> run = runCommand(step, absl::Seconds(20));
    if (!run.ok()) {
      return run.status();
    }
    if (run->exit_code != 0) {
      return absl::InternalError(
          absl::StrCat("openssl ", step[1], " failed: ", run->output));
    }
  }
  return pki;
}

EtcdCluster::EtcdCluster(const Options& options)
    : extra_flags_(options.extra_flags), tls_(options.tls) {}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::start(const Options& options) {
  absl::Status last;
  // Another process may take a port between our pick and etcd's bind: pick again.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::unique_ptr<EtcdCluster> cluster(new EtcdCluster(options));
    absl::StatusOr<std::vector<uint16_t>> ports = freePorts(2 * options.members);
    if (!ports.ok()) {
      return ports.status();
    }
    for (int i = 0; i < options.members; ++i) {
      Member m;
      m.name = absl::StrCat("m", i + 1);
      m.client_port = (*ports)[2 * i];
      m.peer_port = (*ports)[2 * i + 1];
      cluster->members_.push_back(std::move(m));
    }
    last = absl::OkStatus();
    for (int i = 0; i < options.members && last.ok(); ++i) {
      last = cluster->spawn(i);
    }
    if (last.ok()) {
      last = cluster->waitHealthy();
    }
    if (last.ok()) {
      return cluster;
    }
  }
  return last;
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) {
    if (running(i)) {
      (void)kill(i);
    }
  }
}

std::string EtcdCluster::endpoint(int i) const {
  return absl::StrCat(tls_ != nullptr ? "https" : "http", "://127.0.0.1:",
                      members_[i].client_port);
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (int i = 0; i < size(); ++i) {
    out.push_back(endpoint(i));
  }
  return out;
}

std::vector<std::string> EtcdCluster::memberArgs(int i) const {
  const Member& m = members_[i];
  std::vector<std::string> initial;
  for (const Member& peer : members_) {
    initial.push_back(absl::StrCat(peer.name, "=http://127.0.0.1:", peer.peer_port));
  }
  std::vector<std::string> args = {
      kEtcd,
      "--name", m.name,
      "--data-dir", absl::StrCat(dir(), "/", m.name, ".etcd"),
      "--listen-client-urls", endpoint(i),
      "--advertise-client-urls", endpoint(i),
      "--listen-peer-urls", absl::StrCat("http://127.0.0.1:", m.peer_port),
      "--initial-advertise-peer-urls", absl::StrCat("http://127.0.0.1:", m.peer_port),
      "--initial-cluster", absl::StrJoin(initial, ","),
      "--initial-cluster-state", "new",
      "--initial-cluster-token", "shadowrelay-test",
      "--heartbeat-interval", "50",
      "--election-timeout", "500",
      "--logger", "zap",
      "--log-outputs", absl::StrCat(dir(), "/", m.name, ".log"),
  };
  if (tls_ != nullptr) {
    args.insert(args.end(), {"--cert-file", tls_->server_cert, "--key-file", tls_->server_key,
                             "--client-cert-auth", "--trusted-ca-file", tls_->ca_cert});
  }
  args.insert(args.end(), extra_flags_.begin(), extra_flags_.end());
  return args;
}

absl::Status EtcdCluster::spawn(int i) {
  const std::string out_path = absl::StrCat(dir(), "/", members_[i].name, ".out");
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create ", out_path));
  }
  // etcd reads ETCD_* variables as flags: its environment is ours to give, and empty.
  absl::StatusOr<pid_t> pid = spawnProcess(memberArgs(i), {}, out_fd);
  ::close(out_fd);
  if (!pid.ok()) {
    return pid.status();
  }
  members_[i].pid = *pid;
  return absl::OkStatus();
}

absl::Status EtcdCluster::waitExit(int i, absl::Duration timeout) {
  Member& m = members_[i];
  if (m.pid <= 0) {
    return absl::OkStatus();
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(m.pid, &status, WNOHANG);
    if (done == m.pid || (done < 0 && errno == ECHILD)) {
      m.pid = -1;
      return absl::OkStatus();
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(m.name, " did not exit"));
    }
    sleepFor(absl::Milliseconds(10));
  }
}

absl::Status EtcdCluster::kill(int i) {
  if (!running(i)) {
    return absl::FailedPreconditionError(absl::StrCat(members_[i].name, " is not running"));
  }
  ::kill(members_[i].pid, SIGKILL);
  return waitExit(i, absl::Seconds(10));
}

absl::Status EtcdCluster::stop(int i) {
  if (!running(i)) {
    return absl::FailedPreconditionError(absl::StrCat(members_[i].name, " is not running"));
  }
  ::kill(members_[i].pid, SIGTERM);
  if (waitExit(i, absl::Seconds(10)).ok()) {
    return absl::OkStatus();
  }
  return kill(i);
}

absl::Status EtcdCluster::restart(int i) {
  if (running(i)) {
    return absl::FailedPreconditionError(absl::StrCat(members_[i].name, " is running"));
  }
  return spawn(i);
}

absl::Status EtcdCluster::stopAll() {
  const std::vector<int> members = runningMembers();
  for (int i : members) {
    ::kill(members_[i].pid, SIGTERM);
  }
  absl::Status status;
  for (int i : members) {
    if (!waitExit(i, absl::Seconds(10)).ok()) {
      status.Update(kill(i));
    }
  }
  return status;
}

absl::Status EtcdCluster::startAll() {
  for (int i = 0; i < size(); ++i) {
    if (!running(i)) {
      absl::Status status = restart(i);
      if (!status.ok()) {
        return status;
      }
    }
  }
  return waitHealthy();
}

std::vector<int> EtcdCluster::runningMembers() const {
  std::vector<int> out;
  for (int i = 0; i < size(); ++i) {
    if (running(i)) {
      out.push_back(i);
    }
  }
  return out;
}

std::vector<std::string> EtcdCluster::etcdctlArgs(const std::vector<int>& members,
                                                  absl::Duration timeout) const {
  std::vector<std::string> urls;
  for (int i : members) {
    urls.push_back(endpoint(i));
  }
  const std::string seconds = absl::StrCat(absl::ToInt64Seconds(timeout), "s");
  std::vector<std::string> args = {kEtcdctl, "--endpoints=" + absl::StrJoin(urls, ","),
                                   "--dial-timeout=" + seconds, "--command-timeout=" + seconds};
  if (tls_ != nullptr) {
    args.insert(args.end(), {"--cacert=" + tls_->ca_cert, "--cert=" + tls_->client_cert,
                             "--key=" + tls_->client_key});
  }
  if (!credentials_.empty()) {
    args.push_back("--user=" + credentials_);
  }
  return args;
}

absl::StatusOr<CommandResult> EtcdCluster::etcdctl(const std::vector<std::string>& args,
                                                   absl::Duration timeout) {
  std::vector<std::string> argv = etcdctlArgs(runningMembers(), std::max(timeout / 2, absl::Seconds(1)));
  argv.insert(argv.end(), args.begin(), args.end());
  return runCommand(argv, timeout, {"ETCDCTL_API=3"});
}

absl::Status EtcdCluster::waitHealthy(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last;
  while (absl::Now() < deadline) {
    for (int i = 0; i < size(); ++i) {
      if (members_[i].pid > 0) {
        int status = 0;
        if (::waitpid(members_[i].pid, &status, WNOHANG) == members_[i].pid) {
          members_[i].pid = -1;
          return absl::UnavailableError(
              absl::StrCat(members_[i].name, " exited: ", logTail(i)));
        }
      }
    }
    const std::vector<int> members = runningMembers();
    // etcdctl's own timeouts bound each probe (1 s while there is no leader).
    std::vector<std::string> argv = etcdctlArgs(members, absl::Seconds(1));
    argv.insert(argv.end(), {"endpoint", "health"});
    absl::StatusOr<CommandResult> run = runCommand(argv, absl::Seconds(5), {"ETCDCTL_API=3"});
    if (run.ok() && run->exit_code == 0) {
      return absl::OkStatus();
    }
    last = run.ok() ? run->output : std::string(run.status().message());
    sleepFor(absl::Milliseconds(100));
  }
  return absl::DeadlineExceededError(absl::StrCat("etcd not healthy: ", last));
}

absl::StatusOr<int> EtcdCluster::leader() {
  absl::StatusOr<CommandResult> run = etcdctl({"endpoint", "status", "-w", "json"});
  if (!run.ok()) {
    return run.status();
  }
  // Members that do not answer are left out of the array (etcdctl exits 1 then).
  const size_t start = run->output.find('[');
  const size_t end = run->output.rfind(']');
  if (start == std::string::npos || end == std::string::npos || end < start) {
    return absl::UnavailableError(absl::StrCat("etcdctl endpoint status: ", run->output));
  }
  const nlohmann::json status =
      nlohmann::json::parse(run->output.substr(start, end - start + 1), nullptr, false);
  if (!status.is_array()) {
    return absl::UnavailableError(absl::StrCat("etcdctl endpoint status: ", run->output));
  }
  for (const nlohmann::json& entry : status) {
    const nlohmann::json& s = entry.value("Status", nlohmann::json::object());
    const uint64_t member = s.value("header", nlohmann::json::object()).value("member_id", 0ULL);
    const uint64_t leader = s.value("leader", 0ULL);
    if (member == 0 || member != leader) {
      continue;
    }
    const std::string url = entry.value("Endpoint", "");
    for (int i = 0; i < size(); ++i) {
      if (endpoint(i) == url) {
        return i;
      }
    }
  }
  return absl::UnavailableError(absl::StrCat("no leader among the members: ", run->output));
}

absl::StatusOr<int> EtcdCluster::killLeader() {
  absl::StatusOr<int> index = leader();
  if (!index.ok()) {
    return index;
  }
  absl::Status status = kill(*index);
  if (!status.ok()) {
    return status;
  }
  return *index;
}

absl::Status EtcdCluster::compact(int64_t revision) {
  absl::StatusOr<CommandResult> run = etcdctl({"compact", absl::StrCat(revision)});
  if (!run.ok()) {
    return run.status();
  }
  if (run->exit_code != 0) {
    return absl::InternalError(absl::StrCat("etcdctl compact: ", run->output));
  }
  return absl::OkStatus();
}

std::string EtcdCluster::logTail(int i, size_t bytes) const {
  const std::string base = absl::StrCat(dir(), "/", members_[i].name);
  return readTail(base + ".out", bytes / 2) + readTail(base + ".log", bytes);
}

}  // namespace shadowrelay::testing
