// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dns/event_driver.h"
#include "dns/resolver.h"

struct ares_channeldata;
struct ares_addrinfo;

namespace shadowrelay::dns {

class DnsCache;
class ResolverObserver;

struct ResolverOptions {
  /// Name servers as "1.1.1.1,127.0.0.1:5353,[::1]:53"; empty: those of /etc/resolv.conf.
  std::string servers;
  /// Timeout of the first try; c-ares doubles it on every further round over the servers,
  /// so a lookup fails after at most servers x timeout x (2^tries - 1) (maxLookupTime()).
  std::chrono::milliseconds timeout{1500};
  int tries = 2;
  /// Lookup order as in c-ares: 'f' = hosts file (/etc/hosts), 'b' = DNS.
  std::string lookups = "fb";
  /// The hosts file read instead of /etc/hosts; empty: /etc/hosts. c-ares 1.18 (Debian
  /// bookworm) takes another file only through $CARES_HOSTS (ARES_AI_ENVHOSTS): create() sets
  /// it, once per process, so every resolver of a process must name the same file (create()
  /// refuses another). Call create() before other threads read the environment.
  std::string hosts_file;
};

/// dns::Resolver on c-ares: one channel per event loop, its sockets watched through the
/// EventDriver (ARES_OPT_SOCK_STATE_CB + ares_process_fd) and its timeouts driven by one
/// driver timer (ares_timeout). Never blocks. Results go through the shared DnsCache, and
/// concurrent lookups of one name share one c-ares lookup. Search domains are never
/// appended: names are resolved as given (a relay gets fully qualified names).
/// Owned by, and only used on, the loop of `driver`.
class CaresResolver final : public Resolver {
 public:
  /// `driver` and `cache` must outlive the resolver; `observer` may be null, else likewise.
  static absl::StatusOr<std::unique_ptr<CaresResolver>> create(EventDriver& driver,
                                                               DnsCache& cache,
                                                               const ResolverOptions& options,
                                                               ResolverObserver* observer);

  /// Pending lookups are dropped without calling back (use cancelAll() first for callbacks).
  ~CaresResolver() override;
  CaresResolver(const CaresResolver&) = delete;
  CaresResolver& operator=(const CaresResolver&) = delete;

  // dns::Resolver
  ResolveHandle resolve(absl::string_view host, AddressPreference preference,
                        ResolveCallback callback) override;
  std::optional<ResolveResult> resolveCached(absl::string_view host,
                                             AddressPreference preference) override;
  void cancelAll() override;

  /// The longest a lookup can take before it fails with Timeout, for the configured servers.
  std::chrono::milliseconds maxLookupTime() const;

  /// c-ares lookups in flight (each may serve several callers).
  size_t inflightLookupsForTest() const { return inflight_.size(); }
  size_t watchedSocketsForTest() const { return watches_.size(); }

 private:
  class Waiter;
  class WaiterList;
  struct Query;

  CaresResolver(EventDriver& driver, DnsCache& cache, const ResolverOptions& options,
                ResolverObserver* observer);
  absl::Status init();

  /// The answer of a literal, an invalid name or a fresh cache entry; else nullopt and `key`
  /// holds the normalized name.
  std::optional<ResolveResult> answerLocally(absl::string_view host,
                                             AddressPreference preference, std::string* key);
  Query* startQuery(std::string key);
  void deliver(Waiter& waiter, ResolveResult result);
  void deliverReady();
  void drainCompleted();
  void updateTimer();
  void onSocketEvent(int fd, uint32_t events);
  void onAresTimer();

  static void onSockState(void* data, int fd, int readable, int writable);
  static void onAddrinfo(void* arg, int status, int timeouts, ares_addrinfo* result);

  EventDriver& driver_;
  DnsCache& cache_;
  ResolverObserver* const observer_;
  const ResolverOptions options_;
  ares_channeldata* channel_ = nullptr;
  /// c-ares sockets, by fd, as announced by onSockState.
  absl::flat_hash_map<int, FdWatchPtr> watches_;
  /// Fires at ares_timeout(); disarmed while nothing is in flight.
  DriverTimerPtr ares_timer_;
  /// Fires on the next iteration to deliver ready_ and completed_ outside resolve().
  DriverTimerPtr deliver_timer_;
  /// Lookups in c-ares, by normalized name; each has at least one waiter unless all cancelled.
  absl::flat_hash_map<std::string, std::unique_ptr<Query>> inflight_;
  /// Lookups c-ares finished whose waiters have not been called yet.
  std::vector<std::unique_ptr<Query>> completed_;
  /// Waiters answered without a query (literal, invalid name, cache hit).
  std::unique_ptr<WaiterList> ready_;
  bool destroying_ = false;
};

}  // namespace shadowrelay::dns
