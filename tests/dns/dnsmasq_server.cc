// SPDX-License-Identifier: Apache-2.0
#include "tests/dns/dnsmasq_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace shadowrelay::dns::testing {
namespace {

constexpr char kDnsmasq[] = "/usr/sbin/dnsmasq";
constexpr char kProbeName[] = "readiness-probe.test";

std::string tempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

/// A port that was free on 127.0.0.1 for UDP a moment ago (dnsmasq may still lose a race).
absl::StatusOr<uint16_t> pickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError("socket");
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sin);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
    ::close(fd);
    return absl::InternalError("bind/getsockname");
  }
  ::close(fd);
  return ntohs(sin.sin_port);
}

/// A DNS query for `name`, type A, id 0x5252.
std::string buildQuery(absl::string_view name) {
  std::string q("\x52\x52\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    q.push_back(static_cast<char>(label.size()));
    q.append(label.data(), label.size());
  }
  q.append("\x00\x00\x01\x00\x01", 5);
  return q;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DnsmasqServer>> DnsmasqServer::start(const Options& options) {
  if (options.port != 0) {
    // A restart on a known port: the previous server may take a moment to release it.
    absl::Status last;
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto server = startOnPort(options, options.port);
      if (server.ok()) {
        return server;
      }
      last = server.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return last;
  }
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<uint16_t> port = pickFreePort();
    if (!port.ok()) {
      return port.status();
    }
    auto server = startOnPort(options, *port);
    if (server.ok()) {
      return server;
    }
    last = server.status();
  }
  return last;
}

absl::StatusOr<std::unique_ptr<DnsmasqServer>> DnsmasqServer::startOnPort(const Options& options,
                                                                          uint16_t port) {
  static std::atomic<int> counter{0};
  const std::string log_path =
      absl::StrCat(tempDir(), "/dnsmasq-", ::getpid(), "-", port, "-", counter++, ".log");
  const std::string out_path = log_path + ".out";
  std::vector<std::string> args = {
      kDnsmasq,
      "--keep-in-foreground",
      "--no-daemon",
      "--conf-file=/dev/null",
      "--no-resolv",
      "--no-hosts",
      "--no-poll",
      "--pid-file=",
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      absl::StrCat("--port=", port),
      "--cache-size=0",
      "--local=/test/",
      absl::StrCat("--local-ttl=", options.local_ttl),
      "--log-queries",
      absl::StrCat("--log-facility=", log_path),
  };
  if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr) {
    args.push_back(absl::StrCat("--user=", pw->pw_name));  // Root would drop to "nobody".
  }
  for (const std::string& record : options.records) {
    args.push_back(record);
  }
  std::vector<char*> argv;
  for (std::string& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create ", out_path));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out_fd);
    return absl::InternalError("fork");
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec. stdout and stderr go to a file.
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(out_fd, STDERR_FILENO);
    ::execv(kDnsmasq, argv.data());
    ::_exit(127);
  }
  ::close(out_fd);
  std::unique_ptr<DnsmasqServer> server(new DnsmasqServer(pid, port, log_path));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (server->exited()) {
      std::ifstream out(out_path);
      std::stringstream text;
      text << out.rdbuf();
      return absl::UnavailableError(
          absl::StrCat("dnsmasq exited on port ", port, ": ", text.str()));
    }
    if (server->answersProbe()) {
      return server;
    }
  }
  return absl::DeadlineExceededError(absl::StrCat("dnsmasq did not answer on port ", port));
}

DnsmasqServer::DnsmasqServer(pid_t pid, uint16_t port, std::string log_path)
    : pid_(pid), port_(port), log_path_(std::move(log_path)) {}

DnsmasqServer::~DnsmasqServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    // Reap, escalating to SIGKILL after 2 s.
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
}

bool DnsmasqServer::exited() {
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return true;
  }
  return false;
}

bool DnsmasqServer::answersProbe() const {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(port_);
  const std::string query = buildQuery(kProbeName);
  bool answered = false;
  if (::sendto(fd, query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&sin),
               sizeof(sin)) == static_cast<ssize_t>(query.size())) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) == 1 && (p.revents & POLLIN) != 0) {
      char buf[512];
      answered = ::recv(fd, buf, sizeof(buf), 0) >= 12;
    }
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::close(fd);
  return answered;
}

std::string DnsmasqServer::serverAddress() const { return absl::StrCat("127.0.0.1:", port_); }

std::string DnsmasqServer::logContents() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int DnsmasqServer::queryCount(absl::string_view name, absl::string_view type) const {
  // Lines look like "... dnsmasq[123]: query[AAAA] h.test from 127.0.0.1".
  const std::string suffix = absl::StrCat("] ", name, " from ");
  const std::string prefix = type.empty() ? "query[" : absl::StrCat("query[", type, "]");
  int count = 0;
  for (absl::string_view line : absl::StrSplit(logContents(), '\n')) {
    const size_t at = line.find(prefix);
    if (at != absl::string_view::npos && line.find(suffix, at) != absl::string_view::npos) {
      ++count;
    }
  }
  return count;
}

int DnsmasqServer::totalQueryCount() const {
  int count = 0;
  for (absl::string_view line : absl::StrSplit(logContents(), '\n')) {
    if (line.find("query[") != absl::string_view::npos &&
        line.find(kProbeName) == absl::string_view::npos) {
      ++count;
    }
  }
  return count;
}

SilentDnsServer::SilentDnsServer() {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sin);
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
    std::perror("SilentDnsServer");
    std::abort();
  }
  port_ = ntohs(sin.sin_port);
}

SilentDnsServer::~SilentDnsServer() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

std::string SilentDnsServer::serverAddress() const { return absl::StrCat("127.0.0.1:", port_); }

int SilentDnsServer::receivedCount() {
  char buf[512];
  while (::recv(fd_, buf, sizeof(buf), 0) >= 0) {
    ++received_;
  }
  return received_;
}

}  // namespace shadowrelay::dns::testing
