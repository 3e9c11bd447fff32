// SPDX-License-Identifier: Apache-2.0
#include "api/metrics/relay_families.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "relay/stats/metric_families.h"
#include "relay/stats/stats_macros.h"
#include "relay/stats/tcp_stats.h"
#include "relay/stats/udp_stats.h"

namespace shadowrelay::api::metrics {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

MetricType typeOf(relay::MetricType type) {
  switch (type) {
    case relay::MetricType::Counter:
      break;
    case relay::MetricType::Gauge:
      return MetricType::Gauge;
    case relay::MetricType::Histogram:
      return MetricType::Histogram;
  }
  return MetricType::Counter;
}

MetricFamily family(relay::Metric metric) {
  const relay::MetricFamilyInfo& info = relay::metricFamily(metric);
  MetricFamily f;
  f.name = std::string(info.name);
  f.help = std::string(info.help);
  f.type = typeOf(info.type);
  return f;
}

/// A counter or a gauge, by the family's type.
void addValue(MetricFamily& f, Labels labels, uint64_t value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Gauge) {
    m.gauge.value = static_cast<double>(value);
  } else {
    m.counter.value = static_cast<double>(value);
  }
  f.metric.push_back(std::move(m));
}

/// Prometheus buckets are cumulative and end with +Inf; FixedHistogram's are per bucket.
void addHistogram(MetricFamily& f, const relay::FixedHistogram& h) {
  ClientMetric m;
  const auto bounds = h.bounds();
  const auto& buckets = h.buckets();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    cumulative += buckets[i];
    const double upper = i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back({cumulative, upper});
  }
  m.histogram.sample_count = cumulative;  // == h.count(); the +Inf bucket must equal it
  m.histogram.sample_sum = h.sum();
  f.metric.push_back(std::move(m));
}

/// The series of every field of `stats` that feeds `metric`: its fixed labels, then `extra`.
template <typename Stats>
void addFields(MetricFamily& f, relay::Metric metric, const Stats& stats, const Labels& extra) {
  for (const relay::FieldSpec<Stats>& spec : Stats::fields()) {
    if (spec.metric != metric) continue;
    Labels labels;
    for (absl::string_view pair : absl::StrSplit(spec.labels, ',', absl::SkipEmpty())) {
      const std::pair<std::string, std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
      labels.push_back({kv.first, kv.second});
    }
    labels.insert(labels.end(), extra.begin(), extra.end());
    addValue(f, std::move(labels), stats.*spec.member);
  }
}

template <typename Stats>
void addHistograms(MetricFamily& f, relay::Metric metric, const Stats& stats) {
  for (const relay::HistogramSpec<Stats>& spec : Stats::histograms()) {
    if (spec.metric == metric) addHistogram(f, stats.*spec.member);
  }
}

size_t index(relay::CloseReason reason) { return static_cast<size_t>(reason); }

/// Users in name order; "" always present. Without per-user labels everybody is "", deleted
/// users included (with labels, a deleted user's series simply end).
std::map<std::string, relay::UserTraffic> usersOf(const relay::WorkerSample& total, bool per_user) {
  std::map<std::string, relay::UserTraffic> users;
  users[""];
  if (!per_user) users[""].add(total.retired_users);
  for (const auto& [name, traffic] : total.users) {
    users[per_user ? name : std::string()].add(traffic);
  }
  return users;
}

/// The series that are not fields of their own: sessions closed by status (a view of the close
/// reasons), the TCP and DNS timeouts, lookups by result. Before the fields' series.
void addDerived(MetricFamily& f, relay::Metric metric, const relay::WorkerSample& total,
                const std::map<std::string, relay::UserTraffic>& users) {
  switch (metric) {
    case relay::Metric::TcpConnectionsClosed: {
      const auto& statuses = closeStatuses();
      for (const auto& [user, t] : users) {
        std::vector<uint64_t> by_status(statuses.size(), 0);
        for (size_t r = 0; r < t.closed.size(); ++r) {
          const std::string label = relay::closeStatusLabel(static_cast<relay::CloseReason>(r));
          const auto it = std::find(statuses.begin(), statuses.end(), label);
          by_status[static_cast<size_t>(it - statuses.begin())] += t.closed[r];
        }
        for (size_t s = 0; s < statuses.size(); ++s) {
          addValue(f, {{"user", user}, {"status", statuses[s]}}, by_status[s]);
        }
      }
      break;
    }
    case relay::Metric::UserRateLimited:
      for (const auto& [user, t] : users) {
        for (size_t d = 0; d < t.rate_limited_nanos.size(); ++d) {
          ClientMetric m;
          m.label = {{"user", user}, {"direction", d == 0 ? "up" : "down"}};
          m.counter.value = static_cast<double>(t.rate_limited_nanos[d]) / 1e9;
          f.metric.push_back(std::move(m));
        }
      }
      break;
    case relay::Metric::Timeouts: {
      const auto& closed = total.tcp.closed;
      addValue(f, {{"kind", "handshake"}}, closed[index(relay::CloseReason::HandshakeTimeout)]);
      addValue(f, {{"kind", "idle"}}, closed[index(relay::CloseReason::IdleTimeout)]);
      addValue(f, {{"kind", "connect"}}, closed[index(relay::CloseReason::ConnectTimeout)]);
      addValue(f, {{"kind", "dns"}},
               total.dns.results[static_cast<size_t>(relay::DnsOutcome::Timeout)]);
      break;  // kind="udp" is UdpStats::expirations
    }
    case relay::Metric::DnsQueries:
      for (size_t i = 0; i < total.dns.results.size(); ++i) {
        addValue(f, {{"result", relay::dnsOutcomeLabel(static_cast<relay::DnsOutcome>(i))}},
                 total.dns.results[i]);
      }
      break;
    default:
      break;
  }
}

}  // namespace

const std::vector<std::string>& closeStatuses() {
  static const std::vector<std::string> statuses = [] {
    std::vector<std::string> out;
    for (size_t i = 0; i < index(relay::CloseReason::kCount); ++i) {
      std::string label = relay::closeStatusLabel(static_cast<relay::CloseReason>(i));
      if (std::find(out.begin(), out.end(), label) == out.end()) {
        out.push_back(std::move(label));
      }
    }
    return out;
  }();
  return statuses;
}

std::vector<prometheus::MetricFamily> relayFamilies(const relay::WorkerSample& total,
                                                    bool per_user) {
  const auto users = usersOf(total, per_user);
  std::vector<MetricFamily> out;
  for (size_t i = 1; i < static_cast<size_t>(relay::Metric::kCount); ++i) {
    const auto metric = static_cast<relay::Metric>(i);
    MetricFamily f = family(metric);
    addDerived(f, metric, total, users);
    addFields(f, metric, total.tcp, {});
    addFields(f, metric, total.udp, {});
    addFields(f, metric, total.dns, {});
    addFields(f, metric, total, {});
    for (const auto& [user, traffic] : users) {
      addFields(f, metric, traffic, {{"user", user}});
    }
    addHistograms(f, metric, total.dns);
    addHistograms(f, metric, total);
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace shadowrelay::api::metrics
