// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "api/control/bearer_token.h"
#include "relay/stats/relay_sample.h"

struct MHD_Daemon;

namespace prometheus {
class Collectable;
class Counter;
class Registry;
class Summary;
}  // namespace prometheus

namespace shadowrelay::api::metrics {

inline constexpr char kMetricsListenOff[] = "off";

/// Threads of the HTTP server. Each serves many connections at once (event-driven), so
/// connections that stall hold no thread; several let a scrape run while another is rendered.
inline constexpr unsigned kMetricsServerThreads = 4;
/// Connections open at once, and from one IP address; more are refused until some close.
inline constexpr unsigned kMetricsMaxConnections = 256;
inline constexpr unsigned kMetricsMaxConnectionsPerIp = 64;

/// local/tunnel: one server of the balancer (relay/upstream) as the shadowrelay_upstream_*
/// families show it. `server` is its name or host:port, never a secret.
struct UpstreamSample {
  std::string server;
  bool up = true;
  double latency_seconds = -1;  // smoothed connect time; negative: not measured yet
  uint64_t connect_failures = 0;
  uint64_t sessions = 0;
};

/// One user's data quota as the shadowrelay_user_quota_* gauges show it.
struct UserQuotaSample {
  std::string user;
  uint64_t used_bytes = 0;   // in the current quota period
  uint64_t quota_bytes = 0;  // 0: no quota (no quota_bytes series)
};

/// The etcd store as the shadowrelay_store_* families show it (issue 19).
struct StoreSample {
  struct Requests {
    std::string method;  // range, txn, watch, ...
    std::string result;  // ok, unavailable, ... (gRPC code, lower case)
    uint64_t count = 0;
  };
  std::vector<Requests> requests;
  bool up = false;
  int64_t revision = 0;
  double last_sync_unix_seconds = 0;  // 0: never
  double watch_lag_seconds = 0;
};

struct MetricsOptions {
  /// --metrics-listen: "host:port" with an IP literal or "localhost", ":port" or "port" (all
  /// IPv4 interfaces), "[v6]:port" ("[::]:port" takes IPv4 too); port 0 picks a free port.
  /// "off": no exporter.
  std::string listen = kMetricsListenOff;
  /// The token of --metrics-token-file: GET /metrics then needs "Authorization: Bearer <token>"
  /// (401 without it). Empty: no authentication.
  std::string token;
  /// A connection that sends nothing for this long is closed: a request never completed, or an
  /// idle keep-alive connection.
  std::chrono::seconds request_timeout{10};
  /// Worker threads that publish (0 .. workers-1). A larger index grows the table.
  size_t workers = 1;
  /// --metrics-per-user: false folds every `user` label value into "".
  bool per_user = true;
  /// shadowrelay_build_info{version, crypto_provider}.
  std::string version;
  std::string crypto_provider;
  /// The shadowrelay_users{state} gauge: users by state (active, disabled, expired,
  /// over_quota); called on the HTTP server's threads at each scrape, so it must be
  /// thread-safe. Unset: the gauge is not exported.
  std::function<std::vector<std::pair<std::string, size_t>>()> users_by_state;
  /// shadowrelay_user_quota_used_bytes{user} (every user) and shadowrelay_user_quota_bytes{user}
  /// (users with a data quota), when per_user; called at each scrape: thread-safe. Unset: not
  /// exported.
  std::function<std::vector<UserQuotaSample>()> user_quotas;
  /// shadowrelay_user_devices{user}: each user's devices counted now (called at each scrape:
  /// thread-safe). Unset: not exported.
  std::function<std::vector<std::pair<std::string, size_t>>()> user_devices;
  /// shadowrelay_plugin_restarts_total{plugin}: the SIP003 plugin's name and restart count
  /// (called at each scrape: thread-safe). Unset: not exported.
  std::string plugin;
  std::function<uint64_t()> plugin_restarts;
  /// shadowrelay_insecure_cipher_in_use{method} = 1 for each legacy stream method in use (the
  /// users' methods, or a client's): called at each scrape, thread-safe. Unset or empty: none.
  std::function<std::vector<std::string>()> insecure_methods;
  /// local/tunnel: the servers and their health, for the shadowrelay_upstream_* families
  /// (called at each scrape: thread-safe). Unset: not exported.
  std::function<std::vector<UpstreamSample>()> upstreams;

  /// The shadowrelay_store_* families (etcd store); called at each scrape: thread-safe.
  /// Unset: not exported.
  std::function<StoreSample()> store;

  bool enabled() const { return listen != kMetricsListenOff; }
};

/// The Prometheus exporter: keeps each worker's latest WorkerSample and serves their sum, plus
/// process_* metrics, as GET /metrics in the text format (prometheus-cpp's serializer) from
/// libmicrohttpd (kMetricsServerThreads epoll threads; IPv4 and IPv6; an optional bearer token;
/// silent connections closed after request_timeout). Other paths are 404, other methods 405.
/// Owns its HTTP server and threads. publish() may be called from any thread.
class MetricsExporter final : public relay::RelayObserver {
 public:
  /// Listens and serves. INVALID_ARGUMENT for "off" (check options.enabled() first) or a
  /// malformed address; UNAVAILABLE if the address cannot be bound (message names the reason).
  static absl::StatusOr<std::unique_ptr<MetricsExporter>> start(MetricsOptions options);
  /// Stops the HTTP server (closes its port, joins its threads, waits for a scrape in
  /// progress), then frees the samples.
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
  class Http;  // libmicrohttpd's callbacks

  explicit MetricsExporter(MetricsOptions options);
  /// The text exposition of every family; counts itself in the exposer_* families.
  std::string render();

  const MetricsOptions options_;
  mutable absl::Mutex mutex_;
  /// Index = worker. Null until that worker's first publish().
  std::vector<std::unique_ptr<relay::WorkerSample>> samples_ ABSL_GUARDED_BY(mutex_);
  /// Index = worker: its publish() calls.
  std::vector<uint64_t> publishes_ ABSL_GUARDED_BY(mutex_);
  std::optional<control::BearerToken> token_;
  std::shared_ptr<prometheus::Collectable> relay_collector_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  /// The exposer_* families: the endpoint's own statistics (thread-safe metrics).
  std::shared_ptr<prometheus::Registry> endpoint_registry_;
  prometheus::Counter* scrapes_ = nullptr;
  prometheus::Counter* transferred_bytes_ = nullptr;
  prometheus::Summary* latency_ = nullptr;
  uint16_t port_ = 0;
  std::string address_;
  /// Stopped first (in the destructor), so no scrape runs while the rest goes away.
  MHD_Daemon* daemon_ = nullptr;
};

}  // namespace shadowrelay::api::metrics
