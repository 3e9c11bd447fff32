// SPDX-License-Identifier: Apache-2.0
#include "relay/worker/worker.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/base/const_init.h"
#include "absl/synchronization/mutex.h"
#include "dns/cares_resolver.h"
#include "dns/resolver_observer.h"
#include "relay/dns_adapter/dns_outcome.h"
#include "relay/dns_adapter/loop_event_driver.h"
#include "relay/log.h"
#include "relay/tcp/client_session.h"
#include "relay/tcp/server_session.h"

namespace shadowrelay::relay {

namespace {
// Connections taken per readiness event of a listener, so one busy listener cannot starve the
// sessions of its worker. With thousands of busy sessions the listener's turn comes about once
// per pass over them: 64 let a burst of 9 900 connects overflow the queue (docs/PERFORMANCE.md,
// "Keep-alive at scale"); a few milliseconds of accepting per turn is the price.
constexpr int kAcceptsPerEvent = 1024;
// Pause after an accept error that the reserve descriptor cannot absorb (ENOBUFS, ENOMEM, or
// EMFILE/ENFILE with no reserve left): with level-triggered epoll the pending connection would
// otherwise wake the loop again at once.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
// Out of descriptors: one warning per this interval, with the count of connections shed.
constexpr auto kNoFdLogInterval = std::chrono::seconds(10);
// How often a worker hands its counters to the metrics exporter (a closed session's bytes are
// visible within this, plus the scrape).
constexpr auto kPublishInterval = std::chrono::milliseconds(1000);
// A session's close also hands the counters over, at most this often (a copy of the sample
// costs about a microsecond per user on the worker's loop).
constexpr auto kPublishOnCloseInterval = std::chrono::milliseconds(250);

/// The descriptor table is the process's, shared by every worker: while one worker has given
/// up a reserve to shed a connection, another worker's accept() would take the freed number
/// for a connection it keeps, the reopen fails and that reserve is gone until something closes.
/// Accepts hold this shared, shedding holds it exclusively (an uncontended reader lock is a few
/// tens of nanoseconds beside a microseconds-long accept4). Descriptors other threads open
/// meanwhile (a worker's upstream socket, the interface watcher's netlink socket) can still
/// take the number, so the reserves are one pool for all workers, one per worker plus a
/// spare: a worker sheds on any reserve left, and a lost one is reopened at the next shed
/// that finds a free number (CI saw one worker lose its own reserve for good and leave its
/// SO_REUSEPORT queue full while the other shed).
ABSL_CONST_INIT absl::Mutex accept_table_mutex(absl::kConstInit);

struct ReservePool {
  std::vector<Fd> fds;  // some may be invalid: lost, to be reopened
};

ReservePool& reservePool() ABSL_EXCLUSIVE_LOCKS_REQUIRED(accept_table_mutex) {
  static auto* pool = new ReservePool;  // never destroyed: workers may outlive statics
  return *pool;
}

/// Reopens lost reserves while there are free descriptor numbers.
void refillReserves() ABSL_EXCLUSIVE_LOCKS_REQUIRED(accept_table_mutex) {
  for (Fd& fd : reservePool().fds) {
    if (fd.valid()) continue;
    fd = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return;
  }
}

/// A worker starting adds its reserve (the first also the spare); one stopping removes one.
void joinReservePool() {
  absl::MutexLock lock(&accept_table_mutex);
  auto& fds = reservePool().fds;
  fds.resize(fds.empty() ? 2 : fds.size() + 1);
  refillReserves();
}

void leaveReservePool() {
  absl::MutexLock lock(&accept_table_mutex);
  auto& fds = reservePool().fds;
  fds.pop_back();
  if (fds.size() == 1) fds.clear();  // the spare goes with the last worker
}

/// SHADOWRELAY_PUBLISH_INTERVAL_MS=N (10..60000) instead of kPublishInterval: tests that wait
/// for publishes (tests/e2e/metrics_e2e_test) wait less.
std::chrono::milliseconds publishInterval() {
  const char* value = std::getenv("SHADOWRELAY_PUBLISH_INTERVAL_MS");
  const long n = value != nullptr ? std::strtol(value, nullptr, 10) : 0;
  return n >= 10 && n <= 60'000 ? std::chrono::milliseconds(n) : kPublishInterval;
}
}  // namespace

/// One listening socket on one worker's loop.
class Worker::Listener {
 public:
  Listener(Worker& worker, Fd fd, uint16_t user_port)
      : worker_(worker),
        fd_(std::move(fd)),
        user_port_(user_port),
        watcher_(worker.loop(), fd_.get(), kReadable, [this](uint32_t) { onReadable(); }),
        pause_(worker.loop(), [this] { watcher_.setInterest(kReadable); }) {}

 int fd() const { return fd_.get(); }
  uint16_t userPort() const { return user_port_; }

 private:
  void onReadable() {
    // Until EAGAIN or kAcceptsPerEvent (docs/PERFORMANCE.md, "Why the code is as it is").
    for (int i = 0; i < kAcceptsPerEvent; ++i) {
      SocketAddress peer;
      peer.len = sizeof(peer.storage);
      int fd;
      int err;  // read before the unlock, which may make system calls
      {
        absl::ReaderMutexLock lock(&accept_table_mutex);
        fd = ::accept4(fd_.get(), peer.get(), &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        err = errno;
      }
      if (fd >= 0) {
        worker_.onAccepted(Fd(fd), peer, user_port_);
        continue;
      }
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      ++worker_.stats().accept_errors;
      if (err == EMFILE || err == ENFILE) {
        // Out of descriptors: the connection stays queued and the listener readable, so a
        // level-triggered loop would spin. Take it on the reserve descriptor and close it, so
        // the queue drains and its clients learn at once (muduo's Acceptor does this).
        const int shed = worker_.shedOnReserve(fd_.get());
        if (shed > 0) {
          noteShed(err);
          continue;
        }
        if (shed == 0) return;  // the queue is empty
      }
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        SR_LOG(Warn, "accept: %s; pausing accepts for %d ms", std::strerror(err),
               static_cast<int>(kAcceptPause.count()));
        watcher_.setInterest(0);
        pause_.armAfter(kAcceptPause);
      } else {
        SR_LOG(Warn, "accept: %s", std::strerror(err));
      }
      return;
    }
  }

  /// Logs running out of descriptors at most once per kNoFdLogInterval.
  void noteShed(int err) {
    ++shed_since_log_;
    const TimePoint now = worker_.loop().now();
    if (last_shed_log_ != TimePoint{} && now - last_shed_log_ < kNoFdLogInterval) return;
    SR_LOG(Warn, "accept: %s; closed %d connection(s) at accept (raise -n/--nofile?)",
           std::strerror(err), static_cast<int>(shed_since_log_));
    last_shed_log_ = now;
    shed_since_log_ = 0;
  }

  Worker& worker_;
  Fd fd_;
  const uint16_t user_port_;
  IoWatcher watcher_;
  Timer pause_;
  TimePoint last_shed_log_{};
  uint64_t shed_since_log_ = 0;
};

/// Counts the resolver's work into the worker's sample (dns::ResolverObserver).
class Worker::DnsObserver final : public dns::ResolverObserver {
 public:
  explicit DnsObserver(DnsSample& dns) : dns_(dns) {}
  void onCacheHit() override { ++dns_.cache_hits; }
  void onCacheMiss() override { ++dns_.cache_misses; }
  void onFailure(dns::ResolveStatus kind) override { count(dnsOutcomeOf(kind)); }
  void onSuccess() override { count(DnsOutcome::Ok); }
  void onLookupLatency(std::chrono::nanoseconds latency) override {
    dns_.lookup_seconds.observe(std::chrono::duration<double>(latency).count());
  }

 private:
  void count(DnsOutcome outcome) { ++dns_.results[static_cast<size_t>(outcome)]; }

  DnsSample& dns_;
};

Worker::Worker(EventLoop& loop, const RelayEnv& env, size_t index)
    : loop_(loop),
      env_(env),
      index_(index),
      scratch_in_(std::make_unique_for_overwrite<uint8_t[]>(kScratchSize)),
      scratch_out_(std::make_unique_for_overwrite<uint8_t[]>(kScratchSize)),
      budgets_(env.budgetOptions()),
      io_batch_(loop, env.io_uring),
      // Session ids are unique across workers: the worker index in the top bits.
      next_session_id_((static_cast<uint64_t>(index) << 48) + 1),
      preauth_(static_cast<uint32_t>(env.config.max_preauth_per_worker), env.source_limiter) {}

Worker::~Worker() {
  if (in_reserve_pool_) leaveReservePool();
  listeners_.clear();
  publish_timer_.reset();
  udp_ports_.clear();
  closeAllSessions();
  if (resolver_) resolver_->cancelAll();
}

absl::Status Worker::init() {
  if (!in_reserve_pool_) {
    joinReservePool();
    in_reserve_pool_ = true;
  }
  driver_ = std::make_unique<LoopEventDriver>(loop_);
  dns::ResolverOptions options;
  options.servers = env_.config.nameserver;
  options.hosts_file = env_.config.hosts_file;
  dns_observer_ = std::make_unique<DnsObserver>(sample_.dns);
  auto resolver =
      dns::CaresResolver::create(*driver_, *env_.dns_cache, options, dns_observer_.get());
  if (!resolver.ok()) return resolver.status();
  resolver_ = std::move(*resolver);
  if (env_.observer != nullptr) {
    const std::chrono::milliseconds interval = publishInterval();
    publish_timer_.emplace(loop_, [this, interval] {
      publishSample();
      publish_timer_->armAfter(interval);
    });
    publish_timer_->armAfter(interval);
  }
  return absl::OkStatus();
}

int Worker::shedOnReserve(int listen_fd) {
  absl::MutexLock lock(&accept_table_mutex);
  refillReserves();  // lost ones come back when numbers are free again
  auto& fds = reservePool().fds;
  const auto reserve =
      std::find_if(fds.begin(), fds.end(), [](const Fd& fd) { return fd.valid(); });
  if (reserve == fds.end()) return -1;
  reserve->reset();
  int fd;
  int err;
  do {
    fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    err = errno;
  } while (fd < 0 && (err == EINTR || err == ECONNABORTED || err == EPROTO));
  if (fd >= 0) {
    ::close(fd);  // nothing read, nothing sent: a FIN
    ++sample_.tcp.refused_no_fd;
  }
  refillReserves();
  if (fd >= 0) return 1;
  return err == EAGAIN || err == EWOULDBLOCK ? 0 : -1;
}

void Worker::addListener(Fd fd, uint16_t user_port) {
  listeners_.push_back(std::make_unique<Listener>(*this, std::move(fd), user_port));
}

void Worker::addUdpPort(std::unique_ptr<UdpPort> port, uint16_t user_port) {
  udp_ports_.emplace_back(user_port, std::move(port));
}

void Worker::closePort(uint16_t user_port) {
  std::erase_if(listeners_, [&](const std::unique_ptr<Listener>& listener) {
    return listener->userPort() == user_port;
  });
  for (auto& [port, udp] : udp_ports_) {
    if (port == user_port) udp_stats_.add(udp->stats());  // keep what it counted
  }
  std::erase_if(udp_ports_, [&](const auto& entry) { return entry.first == user_port; });
}

void Worker::closeUdp() {
  for (auto& [port, udp] : udp_ports_) udp_stats_.add(udp->stats());
  udp_ports_.clear();
}

UdpStats Worker::udpTotals() const {
  UdpStats total = udp_stats_;
  for (const auto& [port, udp] : udp_ports_) total.add(udp->stats());
  return total;
}

size_t Worker::udpAssociationCount() const {
  size_t count = 0;
  for (const auto& [port, udp] : udp_ports_) count += udp->associationCount();
  return count;
}

UserTraffic& Worker::traffic(absl::string_view name) {
  auto it = sample_.users.find(name);
  if (it != sample_.users.end()) return it->second;
  return sample_.users[std::string(name)];
}

void Worker::publishSample() {
  if (env_.observer == nullptr) return;
  sample_.tcp_active = sample_.tcp.active;
  sample_.udp = udpTotals();
  sample_.udp_associations_active = udpAssociationCount();
  env_.observer->publish(index_, sample_);
  last_publish_ = loop_.now();
}

void Worker::setUsers(UserTablePtr table) {
  users_.setTable(table);
  if (table == nullptr) return;
  // Sessions of users that may no longer relay. Collected first: close() edits sessions_.
  std::vector<TcpSession*> revoked;
  for (auto& [id, session] : sessions_) {
    const RelayUserPtr& user = session->user();
    if (user != nullptr && !table->keeps(*user)) revoked.push_back(session.get());
  }
  for (TcpSession* session : revoked) session->close(CloseReason::Revoked);
  if (!revoked.empty()) {
    SR_LOG(Info, "user table %d: closed %d sessions of changed users", table->generation(),
           revoked.size());
  }
  for (auto& [port, udp] : udp_ports_) udp->revoke(*table);
  // Deleted users' sessions and associations are closed now, and nobody can count into their
  // entries any more: retire them (the sample's user label stays bounded by the table).
  for (auto it = sample_.users.begin(); it != sample_.users.end();) {
    if (!it->first.empty() && table->find(it->first) == nullptr) {
      sample_.retired_users.add(it->second);
      sample_.users.erase(it++);
    } else {
      ++it;
    }
  }
}

size_t Worker::bufferedBytes() const {
  size_t total = 0;
  for (const auto& [id, session] : sessions_) total += session->bufferedBytes();
  return total;
}

uint16_t Worker::listenPortForTest() const {
  return listeners_.empty() ? 0 : localAddress(listeners_.front()->fd()).port();
}

void Worker::stopAccepting() { listeners_.clear(); }

void Worker::closeAllSessions() {
  std::vector<TcpSession*> open;
  open.reserve(sessions_.size());
  for (auto& [id, session] : sessions_) open.push_back(session.get());
  for (TcpSession* session : open) session->close(CloseReason::Shutdown);
}

void Worker::releaseSession(TcpSession& session) {
  auto node = sessions_.extract(session.id());
  if (!node.empty()) loop_.deferredDelete(std::move(node.mapped()));
  // The closed session's bytes reach the exporter now rather than at the next tick.
  if (publish_timer_ && loop_.now() - last_publish_ >= kPublishOnCloseInterval) publishSample();
}

void Worker::onAccepted(Fd fd, const SocketAddress& peer, uint16_t user_port) {
  PreauthSlot slot;
  if (env_.config.role == Role::Server) {
    PreauthGate::Verdict verdict;
    slot = preauth_.admit(peer, &verdict);
    if (!slot.held()) {
      // Closed now, before a byte is read or sent (a FIN), and no session is made.
      ++(verdict == PreauthGate::Verdict::SourceFull ? sample_.tcp.refused_source
                                                     : sample_.tcp.refused_worker);
      return;
    }
  }
  if (env_.config.no_delay) setNoDelay(fd.get());
  std::unique_ptr<TcpSession> session;
  switch (env_.config.role) {
    case Role::Server:
      session =
          std::make_unique<ServerSession>(*this, std::move(fd), peer, user_port, std::move(slot));
      break;
    case Role::Local:
      session = std::make_unique<ClientSession>(*this, std::move(fd), ClientSession::Front::Socks5);
      break;
    case Role::Tunnel:
      session = std::make_unique<ClientSession>(*this, std::move(fd), ClientSession::Front::Tunnel);
      break;
  }
  adopt(std::move(session));
}

void Worker::startStream(Fd fd, const crypto::SocksAddress& target) {
  adopt(std::make_unique<ClientSession>(*this, std::move(fd), ClientSession::Front::Tunnel,
                                        target));
}

void Worker::adopt(std::unique_ptr<TcpSession> session) {
  TcpSession* raw = session.get();
  sessions_.emplace(raw->id(), std::move(session));
  raw->start();
}

}  // namespace shadowrelay::relay
