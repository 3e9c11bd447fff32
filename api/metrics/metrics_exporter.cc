// SPDX-License-Identifier: Apache-2.0
#include "api/metrics/metrics_exporter.h"

#include <microhttpd.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "api/metrics/process_collector.h"
#include "api/metrics/relay_families.h"
#include "dns/ip_address.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/summary.h"
#include "prometheus/text_serializer.h"
#include "relay/net/endpoint.h"
#include "relay/net/socket.h"

namespace shadowrelay::api::metrics {

namespace {

constexpr absl::string_view kMetricsPath = "/metrics";
/// Liveness for probes and the container HEALTHCHECK: 200 without the metrics token (it tells
/// only that the process answers), so a probe never needs the secret that guards the metrics.
constexpr absl::string_view kHealthPath = "/healthz";
constexpr char kTextFormat[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kPlainText[] = "text/plain; charset=utf-8";

/// "1.2.3.4:80" or "[::1]:80".
std::string text(const relay::SocketAddress& address) {
  return relay::Endpoint::fromSocketAddress(address).toString();
}

absl::Status badListen(absl::string_view listen, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("metrics-listen \"", listen, "\": ", why));
}

absl::StatusOr<relay::SocketAddress> parseListen(absl::string_view listen) {
  // ":port" and "port" alone: every IPv4 interface.
  std::string spelled(listen);
  if (spelled.find(':') == std::string::npos) {
    spelled = absl::StrCat("0.0.0.0:", spelled);
  } else if (spelled.front() == ':') {
    spelled = absl::StrCat("0.0.0.0", spelled);
  }
  auto endpoint = relay::Endpoint::parse(spelled, relay::Endpoint::Port::AnyOrZero);
  if (!endpoint.ok()) {
    return badListen(listen, "expected host:port, [IPv6]:port or a port number");
  }
  if (endpoint->host == "localhost") endpoint->host = "127.0.0.1";
  const std::optional<dns::IpAddress> ip = endpoint->ip();
  if (!ip) {
    return badListen(listen, absl::StartsWith(listen, "[") ? "not an IPv6 address"
                                                           : "the host must be an IP address");
  }
  return relay::socketAddressOf(*ip, endpoint->port);
}

prometheus::MetricFamily gaugeFamily(std::string name, std::string help,
                                     std::vector<prometheus::ClientMetric::Label> labels,
                                     double value) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = prometheus::MetricType::Gauge;
  f.metric.emplace_back();
  f.metric.back().label = std::move(labels);
  f.metric.back().gauge.value = value;
  return f;
}

/// One series, like gaugeFamily(), as a counter.
prometheus::MetricFamily counterFamily(std::string name, std::string help,
                                       std::vector<prometheus::ClientMetric::Label> labels,
                                       double value) {
  prometheus::MetricFamily f = gaugeFamily(std::move(name), std::move(help), std::move(labels), 0);
  f.type = prometheus::MetricType::Counter;
  f.metric.back().counter.value = value;
  return f;
}

/// shadowrelay_user_devices{user}: one series per user; without per-user labels their sum as
/// user="".
prometheus::MetricFamily userDevicesFamily(std::vector<std::pair<std::string, size_t>> users,
                                           bool per_user) {
  prometheus::MetricFamily f;
  f.name = "shadowrelay_user_devices";
  f.help =
      "Devices (client IPv4 addresses or IPv6 /64s) of the user counted now: with a session or "
      "association open, or one within --device-window (UserLimits.max_devices).";
  f.type = prometheus::MetricType::Gauge;
  if (!per_user) {
    size_t total = 0;
    for (const auto& [name, count] : users) total += count;
    users = {{"", total}};
  }
  std::sort(users.begin(), users.end());
  for (const auto& [name, count] : users) {
    f.metric.emplace_back();
    f.metric.back().label = {{"user", name}};
    f.metric.back().gauge.value = static_cast<double>(count);
  }
  return f;
}

/// shadowrelay_worker_publishes_total{worker}: one series per worker, from 0.
prometheus::MetricFamily publishesFamily(const std::vector<uint64_t>& counts) {
  prometheus::MetricFamily f;
  f.name = "shadowrelay_worker_publishes_total";
  f.help =
      "Samples each worker handed to the exporter (every second and on closes); a worker whose "
      "count stops growing is stuck.";
  f.type = prometheus::MetricType::Counter;
  for (size_t worker = 0; worker < counts.size(); ++worker) {
    f.metric.emplace_back();
    f.metric.back().label = {{"worker", absl::StrCat(worker)}};
    f.metric.back().counter.value = static_cast<double>(counts[worker]);
  }
  return f;
}

/// A gauge family without series yet; addGauge() adds them.
prometheus::MetricFamily gaugeFamily(std::string name, std::string help) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void addGauge(prometheus::MetricFamily& f, const char* label, std::string value, double v) {
  f.metric.emplace_back();
  f.metric.back().label = {{label, std::move(value)}};
  f.metric.back().gauge.value = v;
}

/// shadowrelay_users{state}.
prometheus::MetricFamily usersFamily(const std::vector<std::pair<std::string, size_t>>& counts) {
  prometheus::MetricFamily f = gaugeFamily(
      "shadowrelay_users",
      "Users the server knows (configured and API users), by state: active, disabled, expired, "
      "over_quota.");
  for (const auto& [state, count] : counts) addGauge(f, "state", state, static_cast<double>(count));
  return f;
}

/// shadowrelay_user_quota_used_bytes{user} (every user) and shadowrelay_user_quota_bytes{user}
/// (users with a quota).
std::vector<prometheus::MetricFamily> quotaFamilies(const std::vector<UserQuotaSample>& users) {
  prometheus::MetricFamily used = gaugeFamily(
      "shadowrelay_user_quota_used_bytes",
      "Bytes (up plus down) counted against the user's data quota in its current period (since "
      "creation without a period), by user.");
  prometheus::MetricFamily quota = gaugeFamily(
      "shadowrelay_user_quota_bytes",
      "The user's data quota (limits.data_quota_bytes), by user; absent: none.");
  for (const UserQuotaSample& u : users) {
    addGauge(used, "user", u.user, static_cast<double>(u.used_bytes));
    if (u.quota_bytes != 0) addGauge(quota, "user", u.user, static_cast<double>(u.quota_bytes));
  }
  std::vector<prometheus::MetricFamily> out;
  out.push_back(std::move(used));
  out.push_back(std::move(quota));
  return out;
}

/// The shadowrelay_upstream_* families: one series per server of a local or tunnel.
std::vector<prometheus::MetricFamily> upstreamFamilies(const std::vector<UpstreamSample>& servers) {
  struct Spec {
    const char* name;
    const char* help;
    prometheus::MetricType type;
    double (*value)(const UpstreamSample&);
  };
  static constexpr Spec kSpecs[] = {
      {"shadowrelay_upstream_up",
       "1 while the server is used, 0 while it is marked down (skipped until a probe reaches it).",
       prometheus::MetricType::Gauge, [](const UpstreamSample& s) { return s.up ? 1.0 : 0.0; }},
      {"shadowrelay_upstream_latency_seconds",
       "Smoothed TCP connect time to the server (probes and sessions); absent until measured.",
       prometheus::MetricType::Gauge, [](const UpstreamSample& s) { return s.latency_seconds; }},
      {"shadowrelay_upstream_connect_failures_total",
       "Connects to the server that failed (refused, unreachable, timed out) for sessions and "
       "UDP associations; each was failed over to the next server when there was one.",
       prometheus::MetricType::Counter,
       [](const UpstreamSample& s) { return static_cast<double>(s.connect_failures); }},
      {"shadowrelay_upstream_sessions_total", "TCP sessions that reached the server.",
       prometheus::MetricType::Counter,
       [](const UpstreamSample& s) { return static_cast<double>(s.sessions); }},
  };
  std::vector<prometheus::MetricFamily> out;
  for (const Spec& spec : kSpecs) {
    prometheus::MetricFamily f;
    f.name = spec.name;
    f.help = spec.help;
    f.type = spec.type;
    for (const UpstreamSample& server : servers) {
      const double value = spec.value(server);
      if (value < 0) continue;  // a latency not measured yet
      f.metric.emplace_back();
      f.metric.back().label = {{"server", server.server}};
      if (spec.type == prometheus::MetricType::Counter) {
        f.metric.back().counter.value = value;
      } else {
        f.metric.back().gauge.value = value;
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<prometheus::MetricFamily> storeFamilies(const StoreSample& store) {
  std::vector<prometheus::MetricFamily> out;
  prometheus::MetricFamily requests;
  requests.name = "shadowrelay_store_requests_total";
  requests.help = "Requests to etcd (the shared user store), by method and result.";
  requests.type = prometheus::MetricType::Counter;
  for (const StoreSample::Requests& r : store.requests) {
    requests.metric.emplace_back();
    requests.metric.back().label = {{"method", r.method}, {"result", r.result}};
    requests.metric.back().counter.value = static_cast<double>(r.count);
  }
  out.push_back(std::move(requests));
  out.push_back(gaugeFamily("shadowrelay_store_up",
                            "1 while this server is in sync with etcd (it answers and this "
                            "server has heard its latest change).",
                            {}, store.up ? 1 : 0));
  out.push_back(gaugeFamily("shadowrelay_store_revision",
                            "The last etcd revision this server has applied.", {},
                            static_cast<double>(store.revision)));
  out.push_back(gaugeFamily("shadowrelay_store_last_sync_timestamp_seconds",
                            "Unix time of this server's last successful sync with etcd (0: "
                            "never).",
                            {}, store.last_sync_unix_seconds));
  out.push_back(gaugeFamily("shadowrelay_store_watch_lag_seconds",
                            "From this server's last write to etcd until its watch delivered "
                            "it.",
                            {}, store.watch_lag_seconds));
  return out;
}

}  // namespace

/// Builds the shadowrelay_* families at scrape time from the exporter's samples.
class MetricsExporter::RelayCollector final : public prometheus::Collectable {
 public:
  /// `exporter` owns this collector and outlives every scrape (its HTTP server stops first).
  explicit RelayCollector(const MetricsExporter& exporter) : exporter_(exporter) {}

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override {
    const MetricsOptions& options = exporter_.options_;
    std::vector<prometheus::MetricFamily> out;
    out.push_back(gaugeFamily(
        "shadowrelay_build_info", "Always 1; the labels name the running build.",
        {{"version", options.version}, {"crypto_provider", options.crypto_provider}}, 1));
    if (options.users_by_state) out.push_back(usersFamily(options.users_by_state()));
    if (options.store) {
      for (auto& f : storeFamilies(options.store())) out.push_back(std::move(f));
    }
    if (options.user_quotas && options.per_user) {
      for (auto& f : quotaFamilies(options.user_quotas())) out.push_back(std::move(f));
    }
    if (options.user_devices) {
      out.push_back(userDevicesFamily(options.user_devices(), options.per_user));
    }
    if (options.insecure_methods) {
      const std::vector<std::string> methods = options.insecure_methods();
      if (!methods.empty()) {
        prometheus::MetricFamily f = gaugeFamily(
            "shadowrelay_insecure_cipher_in_use",
            "1 for each legacy stream method (no integrity protection) that a user or this "
            "client uses; allowed by --allow-insecure-ciphers.",
            {{"method", methods.front()}}, 1);
        for (size_t i = 1; i < methods.size(); ++i) {
          f.metric.emplace_back();
          f.metric.back().label = {{"method", methods[i]}};
          f.metric.back().gauge.value = 1;
        }
        out.push_back(std::move(f));
      }
    }
    if (options.plugin_restarts) {
      out.push_back(counterFamily("shadowrelay_plugin_restarts_total",
                                  "Times the SIP003 plugin was started again after it exited.",
                                  {{"plugin", options.plugin}},
                                  static_cast<double>(options.plugin_restarts())));
    }
    if (options.upstreams) {
      auto upstreams = upstreamFamilies(options.upstreams());
      out.insert(out.end(), std::make_move_iterator(upstreams.begin()),
                 std::make_move_iterator(upstreams.end()));
    }
    // Read before the samples: a scrape never counts a publish whose sample it lacks.
    out.push_back(publishesFamily(exporter_.publishCounts()));
    auto relay = relayFamilies(exporter_.total(), options.per_user);
    out.insert(out.end(), std::make_move_iterator(relay.begin()),
               std::make_move_iterator(relay.end()));
    return out;
  }

 private:
  const MetricsExporter& exporter_;
};

MetricsExporter::MetricsExporter(MetricsOptions options)
    : options_(std::move(options)), samples_(options_.workers), publishes_(options_.workers) {}

/// libmicrohttpd's callbacks, with access to the exporter.
class MetricsExporter::Http {
 public:
  /// MHD_AccessHandlerCallback: called once the headers are in (`*state` null), then for any
  /// body (ignored), then once more: the answer goes out on that last call.
  static MHD_Result onRequest(void* cls, MHD_Connection* connection, const char* url,
                              const char* method, const char* /*version*/,
                              const char* /*upload_data*/, size_t* upload_data_size, void** state) {
    static int headers_seen;
    if (*state == nullptr) {
      *state = &headers_seen;
      return MHD_YES;
    }
    if (*upload_data_size != 0) {
      *upload_data_size = 0;
      return MHD_YES;
    }
    auto& exporter = *static_cast<MetricsExporter*>(cls);
    const absl::string_view verb(method);
    if (verb != MHD_HTTP_METHOD_GET && verb != MHD_HTTP_METHOD_HEAD) {
      return answer(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", kPlainText,
                    {{MHD_HTTP_HEADER_ALLOW, "GET, HEAD"}});
    }
    if (absl::string_view(url) == kHealthPath) return answer(connection, MHD_HTTP_OK, "ok\n");
    if (absl::string_view(url) != kMetricsPath) {
      return answer(connection, MHD_HTTP_NOT_FOUND,
                    "not found: the metrics are at /metrics, liveness at /healthz\n");
    }
    if (exporter.token_) {
      const char* authorization =
          MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
      if (authorization == nullptr || !exporter.token_->accepts(authorization)) {
        return answer(connection, MHD_HTTP_UNAUTHORIZED,
                      "unauthorized: send \"Authorization: Bearer <token>\"\n", kPlainText,
                      {{MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"metrics\""}});
      }
    }
    return answer(connection, MHD_HTTP_OK, exporter.render(), kTextFormat);
  }

 private:
  static MHD_Result answer(
      MHD_Connection* connection, unsigned int status, const std::string& body,
      const char* content_type = kPlainText,
      std::initializer_list<std::pair<const char*, const char*>> headers = {}) {
    MHD_Response* response = MHD_create_response_from_buffer(
        body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) return MHD_NO;  // out of memory: MHD closes the connection
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (const auto& [name, value] : headers) MHD_add_response_header(response, name, value);
    const MHD_Result queued = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return queued;
  }
};

MetricsExporter::~MetricsExporter() {
  // Closes the listening socket and joins the threads; a scrape in progress finishes first.
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

absl::StatusOr<std::unique_ptr<MetricsExporter>> MetricsExporter::start(MetricsOptions options) {
  if (!options.enabled()) {
    return absl::InvalidArgumentError("metrics exporter: listen is \"off\"");
  }
  const auto address = parseListen(options.listen);
  if (!address.ok()) {
    return address.status();
  }
  // Our own listening socket (errors name the reason; "[::]" takes IPv4 too), handed over.
  relay::ListenOptions listen;
  listen.reuse_port = false;
  listen.v6_only = false;
  listen.backlog = 128;
  auto fd = relay::listenTcp(*address, listen);
  if (!fd.ok()) {
    return absl::UnavailableError(absl::StrCat("metrics-listen: ", fd.status().message()));
  }
  const uint16_t port = relay::localAddress(fd->get()).port();
  std::unique_ptr<MetricsExporter> exporter(new MetricsExporter(std::move(options)));
  const MetricsOptions& o = exporter->options_;
  if (!o.token.empty()) exporter->token_.emplace(o.token);
  exporter->relay_collector_ = std::make_shared<RelayCollector>(*exporter);
  exporter->process_collector_ = std::make_shared<ProcessCollector>();
  exporter->endpoint_registry_ = std::make_shared<prometheus::Registry>();
  exporter->scrapes_ = &prometheus::BuildCounter()
                            .Name("exposer_scrapes_total")
                            .Help("Scrapes of /metrics answered.")
                            .Register(*exporter->endpoint_registry_)
                            .Add({});
  exporter->transferred_bytes_ = &prometheus::BuildCounter()
                                      .Name("exposer_transferred_bytes_total")
                                      .Help("Bytes of /metrics answers (uncompressed).")
                                      .Register(*exporter->endpoint_registry_)
                                      .Add({});
  exporter->latency_ =
      &prometheus::BuildSummary()
           .Name("exposer_request_latencies")
           .Help("Time to collect and serialize a scrape, in microseconds.")
           .Register(*exporter->endpoint_registry_)
           .Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.9, 0.01}, {0.99, 0.001}});
  const unsigned timeout = static_cast<unsigned>(std::max<int64_t>(1, o.request_timeout.count()));
  exporter->daemon_ = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD, 0, nullptr, nullptr, &Http::onRequest, exporter.get(),
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd->get()), MHD_OPTION_THREAD_POOL_SIZE,
      kMetricsServerThreads, MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_LIMIT,
      kMetricsMaxConnections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, kMetricsMaxConnectionsPerIp,
      MHD_OPTION_END);
  if (exporter->daemon_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("metrics-listen ", text(*address), ": the HTTP server did not start"));
  }
  fd->release();  // the daemon closes it when stopped
  relay::SocketAddress bound = *address;
  bound.setPort(port);
  exporter->port_ = port;
  exporter->address_ = text(bound);
  return exporter;
}

std::string MetricsExporter::render() {
  const auto started = std::chrono::steady_clock::now();
  std::vector<prometheus::MetricFamily> families = relay_collector_->Collect();
  for (const auto* collectable : {process_collector_.get(), static_cast<prometheus::Collectable*>(
                                                                endpoint_registry_.get())}) {
    auto more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  std::string body = prometheus::TextSerializer().Serialize(families);
  scrapes_->Increment();
  transferred_bytes_->Increment(static_cast<double>(body.size()));
  latency_->Observe(
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started)
          .count());
  return body;
}

void MetricsExporter::publish(size_t worker, const relay::WorkerSample& sample) {
  auto copy = std::make_unique<relay::WorkerSample>(sample);
  {
    absl::MutexLock lock(&mutex_);
    if (worker >= samples_.size()) {
      samples_.resize(worker + 1);
      publishes_.resize(worker + 1);
    }
    samples_[worker].swap(copy);
    ++publishes_[worker];
  }
  // The worker's previous sample is freed here, outside the lock.
}

relay::WorkerSample MetricsExporter::total() const {
  relay::WorkerSample sum;
  absl::MutexLock lock(&mutex_);
  for (const auto& sample : samples_) {
    if (sample != nullptr) {
      sum.add(*sample);
    }
  }
  return sum;
}

std::vector<uint64_t> MetricsExporter::publishCounts() const {
  absl::MutexLock lock(&mutex_);
  return publishes_;
}

}  // namespace shadowrelay::api::metrics
