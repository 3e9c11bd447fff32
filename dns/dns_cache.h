// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/string_view.h"
#include "dns/ip_address.h"
#include "dns/resolver.h"

namespace shadowrelay::dns {

/// LRU cache of lookup results keyed by normalized host name (normalizeHostName), with TTL
/// expiry. Positive entries live for the record TTL clamped to [min_ttl, max_ttl]; NXDOMAIN and
/// NODATA entries live for negative_ttl. Thread-safe: one cache is shared by every loop's
/// resolver (docs/DNS.md explains why), split into `shards` independently locked LRU lists
/// chosen by the name's hash. The capacity is split among the shards, so eviction is LRU
/// within a shard; the total never exceeds `capacity`.
class DnsCache {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    /// Most entries held; 0 disables caching.
    size_t capacity = 10'000;
    /// Independently locked parts (clamped to [1, capacity]); 1 gives an exact global LRU.
    size_t shards = 16;
    std::chrono::milliseconds min_ttl{std::chrono::seconds(5)};
    std::chrono::milliseconds max_ttl{std::chrono::minutes(5)};
    std::chrono::milliseconds negative_ttl{std::chrono::seconds(10)};
  };

  struct Entry {
    ResolveStatus status = ResolveStatus::Ok;  ///< Ok, NxDomain or NoData.
    std::vector<IpAddress> addresses;          ///< In the server's order; empty unless Ok.
    Clock::time_point expires_at;
  };

  DnsCache();
  explicit DnsCache(const Options& options);
  ~DnsCache();
  DnsCache(const DnsCache&) = delete;
  DnsCache& operator=(const DnsCache&) = delete;

  /// The fresh entry for `name`, which becomes the most recently used; an expired entry is
  /// removed and nullopt returned.
  std::optional<Entry> find(absl::string_view name, Clock::time_point now);

  /// Stores a result, replacing any entry for `name` and evicting the least recently used
  /// entry of the shard when full. `status` must be Ok (with addresses), NxDomain or NoData;
  /// other statuses are not cached. `record_ttl` is the smallest TTL of the answer's records.
  void insert(absl::string_view name, ResolveStatus status, std::vector<IpAddress> addresses,
              std::chrono::seconds record_ttl, Clock::time_point now);

  void erase(absl::string_view name);
  void clear();
  /// Entries held, expired ones not yet removed included.
  size_t size() const;
  const Options& options() const { return options_; }

 private:
  class Shard;
  Shard& shardFor(absl::string_view name) const;

  const Options options_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace shadowrelay::dns
