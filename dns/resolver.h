// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "dns/ip_address.h"

namespace shadowrelay::dns {

/// Outcome of a lookup. Everything but Ok is a failure kind.
enum class ResolveStatus : uint8_t {
  Ok,
  NxDomain,       ///< The name does not exist.
  NoData,         ///< The name exists but has no address of the wanted families.
  Timeout,        ///< No server answered within timeout x tries.
  ServerFailure,  ///< SERVFAIL, REFUSED, connection refused, malformed answers.
  InvalidName,    ///< Rejected before any query (see isValidHostName).
  Cancelled,      ///< The resolver was shut down (Resolver::cancelAll).
  Internal,       ///< Out of memory, unreadable hosts file, other library errors.
};

/// "ok", "nxdomain", "nodata", "timeout", "server_failure", "invalid_name", "cancelled",
/// "internal": stable, usable as a metric label.
constexpr absl::string_view toString(ResolveStatus status) {
  switch (status) {
    case ResolveStatus::Ok:
      return "ok";
    case ResolveStatus::NxDomain:
      return "nxdomain";
    case ResolveStatus::NoData:
      return "nodata";
    case ResolveStatus::Timeout:
      return "timeout";
    case ResolveStatus::ServerFailure:
      return "server_failure";
    case ResolveStatus::InvalidName:
      return "invalid_name";
    case ResolveStatus::Cancelled:
      return "cancelled";
    case ResolveStatus::Internal:
      return "internal";
  }
  return "internal";
}

/// Which addresses a caller wants, and in which order.
enum class AddressPreference : uint8_t {
  Ipv4First,  ///< Default: IPv4 addresses first, then IPv6.
  Ipv6First,  ///< Like shadowsocks-libev -6.
  Ipv4Only,
  Ipv6Only,
};

struct ResolveResult {
  ResolveStatus status = ResolveStatus::Internal;
  /// Ordered by the preference; non-empty exactly when status == Ok.
  std::vector<IpAddress> addresses;
  /// Answered from the cache (positive or negative entry) without a query.
  bool from_cache = false;

  bool ok() const { return status == ResolveStatus::Ok; }
};

/// Called once, on the resolver's loop, never from inside resolve(). The callee may start
/// new lookups and cancel others, but must not destroy the resolver.
using ResolveCallback = std::function<void(ResolveResult result)>;

/// A lookup in flight, owned by its ResolveHandle. Destroying it cancels the lookup: the
/// callback is dropped (the DNS query itself still completes and fills the cache).
class PendingResolve {
 public:
  virtual ~PendingResolve() = default;
  /// True once the callback has run (or can no longer run).
  virtual bool done() const = 0;
};

/// RAII handle returned by Resolver::resolve(). Movable; destroying it or calling cancel()
/// guarantees the callback will not run. Must be destroyed on the resolver's loop thread.
class ResolveHandle {
 public:
  ResolveHandle() = default;
  explicit ResolveHandle(std::unique_ptr<PendingResolve> pending) : pending_(std::move(pending)) {}

  /// Drops the callback if it has not run yet. Idempotent.
  void cancel() { pending_.reset(); }
  /// True while the callback is still to come.
  bool pending() const { return pending_ != nullptr && !pending_->done(); }

 private:
  std::unique_ptr<PendingResolve> pending_;
};

/// Asynchronous host name resolution bound to one event loop. Not thread-safe: every method
/// runs on the loop that owns the resolver.
class Resolver {
 public:
  virtual ~Resolver() = default;

  /// Resolves `host` (a name, or an IPv4/IPv6 literal that bypasses DNS). The result arrives
  /// through `callback` on this loop, at the earliest on the next loop iteration.
  /// @return the handle that owns the lookup; dropping it cancels the callback.
  virtual ResolveHandle resolve(absl::string_view host, AddressPreference preference,
                                ResolveCallback callback) = 0;

  /// The answer if it is known without a query (literal, invalid name, fresh cache entry),
  /// else nullopt. Never blocks and never calls back.
  virtual std::optional<ResolveResult> resolveCached(absl::string_view host,
                                                     AddressPreference preference) = 0;

  /// Fails every lookup still pending with Cancelled; their callbacks run before this returns.
  /// For shutdown: later lookups still work.
  virtual void cancelAll() = 0;
};

}  // namespace shadowrelay::dns
