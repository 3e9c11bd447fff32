// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>

#include "dns/resolver.h"

namespace shadowrelay::dns {

/// Hooks for metrics. Called on the resolver's loop thread; implementations must be cheap and
/// must not call back into the resolver. Counting rules, per resolve() call:
///  - a literal or an invalid name: neither a hit nor a miss;
///  - any other name: exactly one onCacheHit() (fresh positive or negative entry) or one
///    onCacheMiss() (joining a query already in flight counts as a miss);
///  - onFailure(kind) once per failed result delivered to a callback (negative cache hits and
///    invalid names included; results dropped by a cancelled handle excluded);
///  - onSuccess() once per successful result of a name (not a literal) delivered to a callback
///    or returned by resolveCached() (results dropped by a cancelled handle excluded).
/// onQuery() and onLookupLatency() are per c-ares lookup (an A + AAAA pair, or a hosts file
/// answer), which coalescing shares between callers.
class ResolverObserver {
 public:
  virtual ~ResolverObserver() = default;

  /// A lookup was started in c-ares (after a cache miss with nothing in flight).
  virtual void onQuery() {}
  virtual void onCacheHit() {}
  virtual void onCacheMiss() {}
  virtual void onFailure(ResolveStatus kind) { (void)kind; }
  virtual void onSuccess() {}
  /// Time from onQuery() to the lookup's completion, successful or not.
  virtual void onLookupLatency(std::chrono::nanoseconds latency) { (void)latency; }
};

}  // namespace shadowrelay::dns
