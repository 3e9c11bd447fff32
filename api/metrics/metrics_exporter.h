// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "relay/stats/relay_sample.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace shadowrelay::api::metrics {

inline constexpr char kMetricsListenOff[] = "off";

struct MetricsOptions {
  /// --metrics-listen: "host:port" with an IPv4 literal or "localhost", ":port" or "port" (all
  /// IPv4 interfaces), "[v6]:port"; port 0 picks a free port. "off": no exporter. IPv6 needs a
  /// civetweb built with IPv6, which Debian's is not: start() then fails with UNAVAILABLE.
  std::string listen = kMetricsListenOff;
  /// Worker threads that publish (0 .. workers-1). A larger index grows the table.
  size_t workers = 1;
  /// --metrics-per-user: false folds every `user` label value into "".
  bool per_user = true;
  /// shadowrelay_build_info{version, crypto_provider}.
  std::string version;
  std::string crypto_provider;
  /// The shadowrelay_users gauge; called on the HTTP server's threads at each scrape, so it must
  /// be thread-safe. Unset: the gauge is not exported.
  std::function<size_t()> users_count;
  /// shadowrelay_plugin_restarts_total{plugin}: the SIP003 plugin's name and restart count
  /// (called at each scrape: thread-safe). Unset: not exported.
  std::string plugin;
  std::function<uint64_t()> plugin_restarts;

  bool enabled() const { return listen != kMetricsListenOff; }
};

/// The Prometheus exporter: keeps each worker's latest WorkerSample and serves their sum, plus
/// process_* metrics, as GET /metrics in the text format (prometheus-cpp, civetweb threads).
/// Owns its HTTP server and threads. publish() may be called from any thread.
class MetricsExporter final : public relay::RelayObserver {
 public:
  /// Listens and serves. INVALID_ARGUMENT for "off" (check options.enabled() first) or a
  /// malformed address; UNAVAILABLE if the address cannot be bound (message names the reason).
  static absl::StatusOr<std::unique_ptr<MetricsExporter>> start(MetricsOptions options);
  /// Stops the HTTP server (waits for a scrape in progress), then frees the samples.
  ~MetricsExporter() override;
  MetricsExporter(const MetricsExporter&) = delete;
  MetricsExporter& operator=(const MetricsExporter&) = delete;

  // relay::RelayObserver
  /// Copies `sample` (outside the lock) and swaps it into the worker's slot. Thread-safe.
  void publish(size_t worker, const relay::WorkerSample& sample) override;

  /// The bound TCP port.
  uint16_t port() const { return port_; }
  /// "host:port" as bound, e.g. "127.0.0.1:9464" or "0.0.0.0:9464".
  const std::string& address() const { return address_; }

  /// The sum of every worker's latest sample: what a scrape reports. Thread-safe.
  relay::WorkerSample total() const;
  /// publish() calls so far per worker (index = worker), also exported as
  /// shadowrelay_worker_publishes_total. Thread-safe.
  std::vector<uint64_t> publishCounts() const;

 private:
  class RelayCollector;

  explicit MetricsExporter(MetricsOptions options);

  const MetricsOptions options_;
  mutable absl::Mutex mutex_;
  /// Index = worker. Null until that worker's first publish().
  std::vector<std::unique_ptr<relay::WorkerSample>> samples_ ABSL_GUARDED_BY(mutex_);
  /// Index = worker: its publish() calls.
  std::vector<uint64_t> publishes_ ABSL_GUARDED_BY(mutex_);
  std::shared_ptr<prometheus::Collectable> relay_collector_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  /// Declared last: destroyed first, so no scrape runs while the rest goes away.
  std::unique_ptr<prometheus::Exposer> exposer_;
  uint16_t port_ = 0;
  std::string address_;
};

}  // namespace shadowrelay::api::metrics
