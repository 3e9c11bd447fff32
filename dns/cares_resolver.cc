// SPDX-License-Identifier: Apache-2.0
#include "dns/cares_resolver.h"

#include <ares.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "dns/dns_cache.h"
#include "dns/host_name.h"
#include "dns/resolver_observer.h"

namespace shadowrelay::dns {
namespace {

absl::Status initLibraryOnce() {
  static int status = [] { return ares_library_init(ARES_LIB_INIT_ALL); }();
  if (status != ARES_SUCCESS) {
    return absl::InternalError(absl::StrCat("ares_library_init: ", ares_strerror(status)));
  }
  return absl::OkStatus();
}

ResolveStatus statusFromAres(int status) {
  switch (status) {
    case ARES_SUCCESS:
      return ResolveStatus::Ok;
    case ARES_ENOTFOUND:
      return ResolveStatus::NxDomain;
    case ARES_ENODATA:
      return ResolveStatus::NoData;
    case ARES_ETIMEOUT:
      return ResolveStatus::Timeout;
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ECONNREFUSED:
    case ARES_ENOTIMP:
    case ARES_EFORMERR:
    case ARES_EBADRESP:
      return ResolveStatus::ServerFailure;
    case ARES_EBADNAME:
      return ResolveStatus::InvalidName;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
      return ResolveStatus::Cancelled;
    default:
      return ResolveStatus::Internal;
  }
}

bool wanted(const IpAddress& ip, AddressPreference preference) {
  switch (preference) {
    case AddressPreference::Ipv4Only:
      return ip.isV4();
    case AddressPreference::Ipv6Only:
      return ip.isV6();
    default:
      return true;
  }
}

/// Orders (and for the *Only preferences filters) `addresses`, keeping the server's order
/// within a family.
ResolveResult makeResult(ResolveStatus status, const std::vector<IpAddress>& addresses,
                         AddressPreference preference, bool from_cache) {
  ResolveResult result;
  result.from_cache = from_cache;
  result.status = status;
  if (status != ResolveStatus::Ok) {
    return result;
  }
  result.addresses.reserve(addresses.size());
  for (const IpAddress& ip : addresses) {
    if (wanted(ip, preference)) {
      result.addresses.push_back(ip);
    }
  }
  if (preference == AddressPreference::Ipv4First) {
    std::stable_partition(result.addresses.begin(), result.addresses.end(),
                          [](const IpAddress& ip) { return ip.isV4(); });
  } else if (preference == AddressPreference::Ipv6First) {
    std::stable_partition(result.addresses.begin(), result.addresses.end(),
                          [](const IpAddress& ip) { return ip.isV6(); });
  }
  if (result.addresses.empty()) {
    result.status = ResolveStatus::NoData;
  }
  return result;
}

}  // namespace

/// One caller's interest in a lookup; owned by its ResolveHandle. Pending exactly while it is
/// linked into a WaiterList (a query's, or the ready list).
class CaresResolver::Waiter final : public PendingResolve {
 public:
  Waiter(ResolveCallback callback, AddressPreference preference)
      : callback(std::move(callback)), preference(preference) {}
  ~Waiter() override;

  bool done() const override { return list == nullptr; }

  ResolveCallback callback;
  const AddressPreference preference;
  /// A host name, not a literal: its successful answer is a lookup's (onSuccess).
  bool name = true;
  /// The answer, for waiters on the ready list.
  ResolveResult result;
  WaiterList* list = nullptr;
  Waiter* prev = nullptr;
  Waiter* next = nullptr;
};

/// Intrusive FIFO of waiters, so that a handle unlinks itself in O(1) on cancellation.
/// Destroying a list detaches its waiters (they become done without a callback).
class CaresResolver::WaiterList {
 public:
  WaiterList() = default;
  WaiterList(const WaiterList&) = delete;
  WaiterList& operator=(const WaiterList&) = delete;
  ~WaiterList() {
    while (popFront() != nullptr) {
    }
  }

  bool empty() const { return head_ == nullptr; }

  void pushBack(Waiter* w) {
    w->list = this;
    w->prev = tail_;
    w->next = nullptr;
    (tail_ != nullptr ? tail_->next : head_) = w;
    tail_ = w;
  }

  void remove(Waiter* w) {
    (w->prev != nullptr ? w->prev->next : head_) = w->next;
    (w->next != nullptr ? w->next->prev : tail_) = w->prev;
    w->list = nullptr;
    w->prev = w->next = nullptr;
  }

  Waiter* popFront() {
    Waiter* w = head_;
    if (w != nullptr) {
      remove(w);
    }
    return w;
  }

  /// Moves every waiter of `other` to the end of this list.
  void takeAll(WaiterList& other) {
    while (Waiter* w = other.popFront()) {
      pushBack(w);
    }
  }

 private:
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

CaresResolver::Waiter::~Waiter() {
  if (list != nullptr) {
    list->remove(this);
  }
}

/// One c-ares lookup (A + AAAA, or the hosts file) and the callers waiting for it.
struct CaresResolver::Query {
  CaresResolver* resolver = nullptr;
  std::string name;
  EventDriver::Clock::time_point started;
  WaiterList waiters;
  ResolveStatus status = ResolveStatus::Internal;
  std::vector<IpAddress> addresses;
};

namespace {

// $CARES_HOSTS names `path` for this process (see ResolverOptions::hosts_file). The file is
// checked here so that a missing one is a configuration error, not a lookup failure later.
absl::Status useHostsFile(const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const char* current = std::getenv("CARES_HOSTS");
  if (current != nullptr && path != current) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hosts file ", path, ": this process already reads ", current, " ($CARES_HOSTS)"));
  }
  std::ifstream probe(path);
  if (!probe) {
    return absl::InvalidArgumentError(absl::StrCat("hosts file ", path, ": cannot be read"));
  }
  if (current == nullptr && ::setenv("CARES_HOSTS", path.c_str(), 1) != 0) {
    return absl::InternalError(absl::StrCat("setenv CARES_HOSTS: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CaresResolver>> CaresResolver::create(
    EventDriver& driver, DnsCache& cache, const ResolverOptions& options,
    ResolverObserver* observer) {
  if (options.timeout <= std::chrono::milliseconds::zero() ||
      options.timeout > std::chrono::minutes(1)) {
    return absl::InvalidArgumentError("DNS timeout must be in (0, 60000] ms");
  }
  if (options.tries < 1 || options.tries > 10) {
    return absl::InvalidArgumentError("DNS tries must be in [1, 10]");
  }
  if (options.lookups.empty() || options.lookups.size() > 2 ||
      options.lookups.find_first_not_of("fb") != std::string::npos) {
    return absl::InvalidArgumentError("DNS lookups must be \"fb\", \"bf\", \"f\" or \"b\"");
  }
  if (absl::Status s = initLibraryOnce(); !s.ok()) {
    return s;
  }
  if (absl::Status s = useHostsFile(options.hosts_file); !s.ok()) {
    return s;
  }
  std::unique_ptr<CaresResolver> resolver(new CaresResolver(driver, cache, options, observer));
  if (absl::Status s = resolver->init(); !s.ok()) {
    return s;
  }
  return resolver;
}

CaresResolver::CaresResolver(EventDriver& driver, DnsCache& cache,
                             const ResolverOptions& options, ResolverObserver* observer)
    : driver_(driver),
      cache_(cache),
      observer_(observer),
      options_(options),
      ready_(std::make_unique<WaiterList>()) {}

absl::Status CaresResolver::init() {
  ares_options opts{};
  int mask = 0;
  opts.sock_state_cb = &CaresResolver::onSockState;
  opts.sock_state_cb_data = this;
  mask |= ARES_OPT_SOCK_STATE_CB;
  opts.timeout = static_cast<int>(options_.timeout.count());
  mask |= ARES_OPT_TIMEOUTMS;
  opts.tries = options_.tries;
  mask |= ARES_OPT_TRIES;
  std::string lookups = options_.lookups;
  opts.lookups = lookups.data();
  mask |= ARES_OPT_LOOKUPS;
  // No search domains, from resolv.conf or anywhere: every name is tried as given, once.
  opts.domains = nullptr;
  opts.ndomains = 0;
  mask |= ARES_OPT_DOMAINS;
  int rc = ares_init_options(&channel_, &opts, mask);
  if (rc != ARES_SUCCESS) {
    channel_ = nullptr;
    return absl::InternalError(absl::StrCat("ares_init_options: ", ares_strerror(rc)));
  }
  if (!options_.servers.empty()) {
    rc = ares_set_servers_ports_csv(channel_, options_.servers.c_str());
    if (rc != ARES_SUCCESS) {
      return absl::InvalidArgumentError(absl::StrCat("bad DNS servers \"", options_.servers,
                                                     "\": ", ares_strerror(rc)));
    }
  }
  ares_timer_ = driver_.createTimer([this] { onAresTimer(); });
  deliver_timer_ = driver_.createTimer([this] {
    deliverReady();
    drainCompleted();
  });
  return absl::OkStatus();
}

CaresResolver::~CaresResolver() {
  destroying_ = true;
  if (channel_ != nullptr) {
    // Ends every query with ARES_EDESTRUCTION (ignored) and closes the sockets, which removes
    // their watches through onSockState.
    ares_destroy(channel_);
    channel_ = nullptr;
  }
  watches_.clear();
  ares_timer_.reset();
  deliver_timer_.reset();
  // Destroying the queries and the ready list detaches their waiters without a callback.
  completed_.clear();
  inflight_.clear();
  ready_.reset();
}

std::optional<ResolveResult> CaresResolver::answerLocally(absl::string_view host,
                                                          AddressPreference preference,
                                                          std::string* key) {
  if (std::optional<IpAddress> ip = IpAddress::parse(host)) {
    return makeResult(ResolveStatus::Ok, {*ip}, preference, /*from_cache=*/false);
  }
  if (!isValidHostName(host)) {
    ResolveResult result;
    result.status = ResolveStatus::InvalidName;
    return result;
  }
  *key = normalizeHostName(host);
  if (std::optional<DnsCache::Entry> entry = cache_.find(*key, driver_.now())) {
    if (observer_ != nullptr) {
      observer_->onCacheHit();
    }
    return makeResult(entry->status, entry->addresses, preference, /*from_cache=*/true);
  }
  return std::nullopt;
}

ResolveHandle CaresResolver::resolve(absl::string_view host, AddressPreference preference,
                                     ResolveCallback callback) {
  auto waiter = std::make_unique<Waiter>(std::move(callback), preference);
  std::string key;
  if (std::optional<ResolveResult> local = answerLocally(host, preference, &key)) {
    waiter->name = !key.empty();
    waiter->result = std::move(*local);
    ready_->pushBack(waiter.get());
    deliver_timer_->armAfter(std::chrono::nanoseconds::zero());
    return ResolveHandle(std::move(waiter));
  }
  if (observer_ != nullptr) {
    observer_->onCacheMiss();
  }
  auto it = inflight_.find(key);
  Query* query = it != inflight_.end() ? it->second.get() : startQuery(std::move(key));
  query->waiters.pushBack(waiter.get());
  if (!completed_.empty()) {
    // c-ares answered inside ares_getaddrinfo (hosts file, .onion): call back next iteration.
    deliver_timer_->armAfter(std::chrono::nanoseconds::zero());
  }
  return ResolveHandle(std::move(waiter));
}

std::optional<ResolveResult> CaresResolver::resolveCached(absl::string_view host,
                                                          AddressPreference preference) {
  std::string key;
  std::optional<ResolveResult> result = answerLocally(host, preference, &key);
  if (result && observer_ != nullptr) {
    if (!result->ok()) {
      observer_->onFailure(result->status);
    } else if (!key.empty()) {  // a name answered from the cache, not a literal
      observer_->onSuccess();
    }
  }
  return result;
}

CaresResolver::Query* CaresResolver::startQuery(std::string key) {
  auto owned = std::make_unique<Query>();
  Query* query = owned.get();
  query->resolver = this;
  query->name = std::move(key);
  query->started = driver_.now();
  inflight_.emplace(query->name, std::move(owned));
  if (observer_ != nullptr) {
    observer_->onQuery();
  }
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  // We order addresses ourselves: skip RFC 6724 sorting (a connect() per address).
  hints.ai_flags = ARES_AI_NOSORT | (options_.hosts_file.empty() ? 0 : ARES_AI_ENVHOSTS);
  ares_getaddrinfo(channel_, query->name.c_str(), /*service=*/nullptr, &hints,
                   &CaresResolver::onAddrinfo, query);
  updateTimer();
  return query;
}

void CaresResolver::onAddrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<ares_addrinfo, void (*)(ares_addrinfo*)> owned(result, &ares_freeaddrinfo);
  Query* query = static_cast<Query*>(arg);
  CaresResolver* self = query->resolver;
  if (self->destroying_) {
    return;  // The destructor frees the query.
  }
  query->status = statusFromAres(status);
  int ttl = INT_MAX;
  if (query->status == ResolveStatus::Ok && result != nullptr) {
    for (const ares_addrinfo_node* node = result->nodes; node != nullptr; node = node->ai_next) {
      std::optional<IpAddress> ip = IpAddress::fromSockaddr(
          node->ai_addr, static_cast<socklen_t>(node->ai_addrlen));
      if (!ip || std::find(query->addresses.begin(), query->addresses.end(), *ip) !=
                     query->addresses.end()) {
        continue;
      }
      query->addresses.push_back(*ip);
      ttl = std::min(ttl, node->ai_ttl);
    }
    for (const ares_addrinfo_cname* cname = result->cnames; cname != nullptr;
         cname = cname->next) {
      ttl = std::min(ttl, cname->ttl);
    }
  }
  if (query->status == ResolveStatus::Ok && query->addresses.empty()) {
    query->status = ResolveStatus::NoData;
  }
  // Hosts file answers carry TTL 0; the cache raises it to min_ttl.
  self->cache_.insert(query->name, query->status, query->addresses,
                      std::chrono::seconds(std::max(ttl, 0)), self->driver_.now());
  auto it = self->inflight_.find(query->name);
  if (it != self->inflight_.end() && it->second.get() == query) {
    self->completed_.push_back(std::move(it->second));
    self->inflight_.erase(it);
  }
}

void CaresResolver::deliver(Waiter& waiter, ResolveResult result) {
  // The waiter is already unlinked (done); the callback may destroy it, so move out first.
  ResolveCallback callback = std::move(waiter.callback);
  if (observer_ != nullptr) {
    if (!result.ok()) {
      observer_->onFailure(result.status);
    } else if (waiter.name) {
      observer_->onSuccess();
    }
  }
  if (callback) {
    callback(std::move(result));
  }
}

void CaresResolver::deliverReady() {
  WaiterList batch;
  batch.takeAll(*ready_);  // Waiters added by the callbacks wait for the next iteration.
  while (Waiter* waiter = batch.popFront()) {
    ResolveResult result = std::move(waiter->result);
    deliver(*waiter, std::move(result));
  }
}

void CaresResolver::drainCompleted() {
  while (!completed_.empty()) {
    std::vector<std::unique_ptr<Query>> batch;
    batch.swap(completed_);
    for (const std::unique_ptr<Query>& query : batch) {
      if (observer_ != nullptr) {
        observer_->onLookupLatency(driver_.now() - query->started);
      }
      while (Waiter* waiter = query->waiters.popFront()) {
        deliver(*waiter, makeResult(query->status, query->addresses, waiter->preference,
                                    /*from_cache=*/false));
      }
    }
  }
}

void CaresResolver::cancelAll() {
  ares_cancel(channel_);  // Every lookup ends with ARES_ECANCELLED, into completed_.
  deliverReady();
  drainCompleted();
  updateTimer();
}

void CaresResolver::updateTimer() {
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
    ares_timer_->cancel();
    return;
  }
  // +1 ms: c-ares rounds to ms, and firing a hair early would just re-arm for ~0.
  ares_timer_->armAfter(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec) +
                        std::chrono::milliseconds(1));
}

void CaresResolver::onSocketEvent(int fd, uint32_t events) {
  // On error or hang-up let c-ares read (and write) so that it sees the error and fails over.
  const bool closed = (events & kFdClosed) != 0;
  const ares_socket_t read_fd = (closed || (events & kFdReadable) != 0) ? fd : ARES_SOCKET_BAD;
  const ares_socket_t write_fd = (closed || (events & kFdWritable) != 0) ? fd : ARES_SOCKET_BAD;
  // May close the socket and so destroy the watch whose callback this is; touch it no more.
  ares_process_fd(channel_, read_fd, write_fd);
  drainCompleted();
  updateTimer();
}

void CaresResolver::onAresTimer() {
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // Handles the timeouts.
  drainCompleted();
  updateTimer();
}

void CaresResolver::onSockState(void* data, int fd, int readable, int writable) {
  auto* self = static_cast<CaresResolver*>(data);
  if (readable == 0 && writable == 0) {
    // c-ares is about to close the socket: stop watching while the fd is still open.
    self->watches_.erase(fd);
    return;
  }
  const uint32_t interest = (readable != 0 ? kFdReadable : 0) | (writable != 0 ? kFdWritable : 0);
  auto it = self->watches_.find(fd);
  if (it != self->watches_.end()) {
    it->second->setInterest(interest);
    return;
  }
  if (self->destroying_) {
    return;
  }
  self->watches_.emplace(fd, self->driver_.watchFd(fd, interest, [self, fd](uint32_t events) {
    self->onSocketEvent(fd, events);
  }));
}

std::chrono::milliseconds CaresResolver::maxLookupTime() const {
  size_t servers = 0;
  ares_addr_port_node* list = nullptr;
  if (ares_get_servers_ports(channel_, &list) == ARES_SUCCESS) {
    for (const ares_addr_port_node* node = list; node != nullptr; node = node->next) {
      ++servers;
    }
    ares_free_data(list);
  }
  servers = std::max<size_t>(servers, 1);
  const int64_t rounds_factor = (int64_t{1} << options_.tries) - 1;
  return options_.timeout * static_cast<int64_t>(servers) * rounds_factor;
}

}  // namespace shadowrelay::dns
