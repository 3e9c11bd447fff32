// SPDX-License-Identifier: Apache-2.0
#include "api/metrics/metrics_exporter.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <thread>
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
#include "relay/net/endpoint.h"
#include "relay/net/socket.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"

namespace shadowrelay::api::metrics {

namespace {

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

/// civetweb reports a failed bind only as "null context", so try the bind first to name the
/// reason (EADDRINUSE, EADDRNOTAVAIL, EACCES). Port 0 always binds.
absl::Status checkBindable(const relay::SocketAddress& address) {
  if (address.port() == 0) {
    return absl::OkStatus();
  }
  const int fd = socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    return absl::UnavailableError(
        absl::StrCat("metrics-listen ", text(address), ": socket: ", std::strerror(err)));
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // as civetweb does
  const int rc = bind(fd, address.get(), address.len);
  const int err = errno;
  close(fd);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics-listen ", text(address), ": cannot listen: ", std::strerror(err)));
  }
  return absl::OkStatus();
}

/// Connects to `address` (the wildcard address through loopback) and closes at once.
void poke(const relay::SocketAddress& address) {
  relay::Endpoint target = relay::Endpoint::fromSocketAddress(address);
  if (target.host == "0.0.0.0") {
    target.host = "127.0.0.1";
  } else if (target.host == "::") {
    target.host = "::1";
  }
  const relay::SocketAddress to = relay::socketAddressOf(*target.ip(), target.port);
  const int fd = socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return;
  }
  connect(fd, to.get(), to.len);
  close(fd);
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

}  // namespace

/// Builds the shadowrelay_* families at scrape time from the exporter's samples.
class MetricsExporter::RelayCollector final : public prometheus::Collectable {
 public:
  /// `exporter` owns this collector and outlives every scrape (its Exposer goes first).
  explicit RelayCollector(const MetricsExporter& exporter) : exporter_(exporter) {}

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override {
    const MetricsOptions& options = exporter_.options_;
    std::vector<prometheus::MetricFamily> out;
    out.push_back(gaugeFamily(
        "shadowrelay_build_info", "Always 1; the labels name the running build.",
        {{"version", options.version}, {"crypto_provider", options.crypto_provider}}, 1));
    if (options.users_count) {
      out.push_back(gaugeFamily("shadowrelay_users",
                                "Users the server accepts (configured and API users).", {},
                                static_cast<double>(options.users_count())));
    }
    if (options.plugin_restarts) {
      out.push_back(counterFamily("shadowrelay_plugin_restarts_total",
                                  "Times the SIP003 plugin was started again after it exited.",
                                  {{"plugin", options.plugin}},
                                  static_cast<double>(options.plugin_restarts())));
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

MetricsExporter::~MetricsExporter() {
  // civetweb's accept thread polls its sockets in 2 s quanta and only then sees the stop flag;
  // a connection wakes it at once, so poke the listener until the Exposer is gone.
  std::atomic<bool> stopped{false};
  std::thread waker;
  if (auto bound = parseListen(address_); bound.ok() && port_ != 0) {
    waker = std::thread([&stopped, address = *bound] {
      for (int i = 0; i < 300 && !stopped.load(); ++i) {  // bounded: 3 s
        poke(address);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }
  exposer_.reset();
  stopped.store(true);
  if (waker.joinable()) {
    waker.join();
  }
}

absl::StatusOr<std::unique_ptr<MetricsExporter>> MetricsExporter::start(MetricsOptions options) {
  if (!options.enabled()) {
    return absl::InvalidArgumentError("metrics exporter: listen is \"off\"");
  }
  const auto address = parseListen(options.listen);
  if (!address.ok()) {
    return address.status();
  }
  if (auto status = checkBindable(*address); !status.ok()) {
    return status;
  }
  std::unique_ptr<MetricsExporter> exporter(new MetricsExporter(std::move(options)));
  exporter->relay_collector_ = std::make_shared<RelayCollector>(*exporter);
  exporter->process_collector_ = std::make_shared<ProcessCollector>();
  // prometheus-cpp throws (CivetException) when civetweb cannot start, e.g. a lost bind race.
  try {
    exporter->exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", text(*address), "num_threads", "2"});
  } catch (const std::exception& e) {
    // Debian's civetweb is built without IPv6 (mg_check_feature(8) == 0): name that first.
    return absl::UnavailableError(absl::StrCat(
        "metrics-listen ", text(*address), ": cannot listen: ",
        address->family() == AF_INET6 ? "this civetweb has no IPv6 support (use an IPv4 address); "
                                    : "",
        e.what()));
  }
  exporter->exposer_->RegisterCollectable(exporter->relay_collector_);
  exporter->exposer_->RegisterCollectable(exporter->process_collector_);
  const std::vector<int> ports = exporter->exposer_->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0 || ports.front() > 65535) {
    return absl::UnavailableError(
        absl::StrCat("metrics-listen ", text(*address), ": no listening port"));
  }
  exporter->port_ = static_cast<uint16_t>(ports.front());
  relay::SocketAddress bound = *address;
  bound.setPort(exporter->port_);
  exporter->address_ = text(bound);
  return exporter;
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
