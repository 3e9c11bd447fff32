// SPDX-License-Identifier: Apache-2.0
#include "api/metrics/relay_families.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <utility>

#include "dns/resolver.h"  // through //relay/stats (see BUILD.bazel)
#include "relay/stats/tcp_stats.h"
#include "relay/stats/udp_stats.h"

namespace shadowrelay::api::metrics {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void addCounter(MetricFamily& f, Labels labels, uint64_t value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(value);
  f.metric.push_back(std::move(m));
}

void addGauge(MetricFamily& f, Labels labels, uint64_t value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = static_cast<double>(value);
  f.metric.push_back(std::move(m));
}

/// Prometheus buckets are cumulative and end with +Inf; FixedHistogram's are per bucket.
MetricFamily histogramFamily(std::string name, std::string help, const relay::FixedHistogram& h) {
  MetricFamily f = family(std::move(name), std::move(help), MetricType::Histogram);
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
  return f;
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
  const auto& tcp = total.tcp;
  const auto& udp = total.udp;
  std::vector<MetricFamily> out;

  // Traffic.
  {
    MetricFamily f = family("shadowrelay_data_bytes_total",
                            "Payload bytes relayed, by protocol (tcp, udp), direction (upload: "
                            "client to target, download: target to client) and user.",
                            MetricType::Counter);
    for (const auto& [user, t] : users) {
      addCounter(f, {{"proto", "tcp"}, {"direction", "upload"}, {"user", user}}, t.tcp_bytes_up);
      addCounter(f, {{"proto", "tcp"}, {"direction", "download"}, {"user", user}},
                 t.tcp_bytes_down);
      addCounter(f, {{"proto", "udp"}, {"direction", "upload"}, {"user", user}}, t.udp_bytes_up);
      addCounter(f, {{"proto", "udp"}, {"direction", "download"}, {"user", user}},
                 t.udp_bytes_down);
    }
    out.push_back(std::move(f));
  }

  // TCP sessions.
  {
    MetricFamily f = family("shadowrelay_tcp_connections_opened_total",
                            "TCP connections accepted from clients.", MetricType::Counter);
    addCounter(f, {}, tcp.accepted);
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family(
        "shadowrelay_tcp_connections_closed_total",
        "TCP sessions closed, by user (\"\": no user identified, e.g. probes) and status: ok, "
        "auth_failed, replay, timeout_handshake, timeout_idle, timeout_connect, dns_failed, "
        "target_refused, target_private, error.",
        MetricType::Counter);
    const auto& statuses = closeStatuses();
    for (const auto& [user, t] : users) {
      std::vector<uint64_t> by_status(statuses.size(), 0);
      for (size_t r = 0; r < t.closed.size(); ++r) {
        const std::string label = relay::closeStatusLabel(static_cast<relay::CloseReason>(r));
        const auto it = std::find(statuses.begin(), statuses.end(), label);
        by_status[static_cast<size_t>(it - statuses.begin())] += t.closed[r];
      }
      for (size_t s = 0; s < statuses.size(); ++s) {
        addCounter(f, {{"user", user}, {"status", statuses[s]}}, by_status[s]);
      }
    }
    out.push_back(std::move(f));
  }
  {
    MetricFamily f =
        family("shadowrelay_tcp_connections_active", "TCP sessions open now.", MetricType::Gauge);
    addGauge(f, {}, total.tcp_active);
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("shadowrelay_tcp_refused_over_limit_total",
                            "TCP sessions refused because their user was over a limit "
                            "(max_connections or data quota), by user.",
                            MetricType::Counter);
    for (const auto& [user, t] : users) {
      addCounter(f, {{"user", user}}, t.refused_over_limit);
    }
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("shadowrelay_tcp_accept_errors_total",
                            "Failed accept() calls (EMFILE, ENFILE, ENOBUFS, ...): the process "
                            "ran out of file descriptors or memory.",
                            MetricType::Counter);
    addCounter(f, {}, tcp.accept_errors);
    out.push_back(std::move(f));
  }
  out.push_back(histogramFamily("shadowrelay_tcp_connection_bytes",
                                "Payload bytes of one TCP session, both directions, at its close.",
                                total.connection_bytes));
  out.push_back(histogramFamily("shadowrelay_tcp_connection_duration_seconds",
                                "Lifetime of one TCP session, accept to close.",
                                total.connection_seconds));
  out.push_back(histogramFamily("shadowrelay_probe_bytes",
                                "Bytes a client sent before its handshake failed (no key opened "
                                "it, replayed salt or bad address): the size of probes.",
                                total.probe_bytes));

  // Timeouts of every layer.
  {
    MetricFamily f = family(
        "shadowrelay_timeouts_total",
        "Timeouts by kind: handshake (client too slow to authenticate), idle (no byte moved "
        "for the timeout), connect (target did not answer), dns (no name server answered), udp "
        "(idle UDP association expired).",
        MetricType::Counter);
    addCounter(f, {{"kind", "handshake"}}, tcp.closed[index(relay::CloseReason::HandshakeTimeout)]);
    addCounter(f, {{"kind", "idle"}}, tcp.closed[index(relay::CloseReason::IdleTimeout)]);
    addCounter(f, {{"kind", "connect"}}, tcp.closed[index(relay::CloseReason::ConnectTimeout)]);
    addCounter(f, {{"kind", "dns"}},
               total.dns.results[static_cast<size_t>(dns::ResolveStatus::Timeout)]);
    addCounter(f, {{"kind", "udp"}}, udp.expirations);
    out.push_back(std::move(f));
  }

  // UDP.
  {
    MetricFamily f =
        family("shadowrelay_udp_associations_active",
               "UDP associations (client address to upstream socket) open now.", MetricType::Gauge);
    addGauge(f, {}, total.udp_associations_active);
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("shadowrelay_udp_associations_created_total",
                            "UDP associations created.", MetricType::Counter);
    addCounter(f, {}, udp.associations);
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("shadowrelay_udp_associations_evicted_total",
                            "UDP associations evicted because the association table was full.",
                            MetricType::Counter);
    addCounter(f, {}, udp.evictions);
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("shadowrelay_udp_packets_total",
                            "UDP datagrams relayed, by direction (upload: client to target, "
                            "download: target to client) and user.",
                            MetricType::Counter);
    for (const auto& [user, t] : users) {
      addCounter(f, {{"direction", "upload"}, {"user", user}}, t.udp_packets_up);
      addCounter(f, {{"direction", "download"}, {"user", user}}, t.udp_packets_down);
    }
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family(
        "shadowrelay_udp_dropped_total",
        "UDP datagrams dropped, by reason: open (too short or no key opened it), replay, "
        "address (bad target address), refused (private target), over_quota (the user is over "
        "its data quota), resolve, send (a send failed), too_big, fragment (SOCKS5 FRAG), "
        "foreign (SOCKS5: not from the client's IP).",
        MetricType::Counter);
    const std::pair<const char*, uint64_t> reasons[] = {
        {"open", udp.dropped_open},       {"replay", udp.dropped_replay},
        {"address", udp.dropped_address}, {"refused", udp.dropped_refused},
        {"over_quota", udp.dropped_over_quota},
        {"resolve", udp.dropped_resolve}, {"send", udp.dropped_send},
        {"too_big", udp.dropped_too_big}, {"fragment", udp.dropped_fragment},
        {"foreign", udp.dropped_foreign},
    };
    for (const auto& [reason, value] : reasons) {
      addCounter(f, {{"reason", reason}}, value);
    }
    out.push_back(std::move(f));
  }

  // DNS.
  {
    MetricFamily f = family("shadowrelay_dns_queries_total",
                            "Host name lookups by result (cache answers included): ok, "
                            "nxdomain, nodata, timeout, server_failure, invalid_name, cancelled, "
                            "internal.",
                            MetricType::Counter);
    for (size_t i = 0; i < total.dns.results.size(); ++i) {
      const auto status = static_cast<dns::ResolveStatus>(i);
      addCounter(f, {{"result", std::string(dns::toString(status))}}, total.dns.results[i]);
    }
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("shadowrelay_dns_cache_hits_total",
                            "Lookups answered from the DNS cache (positive or negative entry).",
                            MetricType::Counter);
    addCounter(f, {}, total.dns.cache_hits);
    out.push_back(std::move(f));
  }
  {
    MetricFamily f =
        family("shadowrelay_dns_cache_misses_total",
               "Lookups the DNS cache could not answer (a query was sent).", MetricType::Counter);
    addCounter(f, {}, total.dns.cache_misses);
    out.push_back(std::move(f));
  }
  out.push_back(histogramFamily("shadowrelay_dns_lookup_duration_seconds",
                                "Duration of DNS lookups that went to a name server (cache "
                                "answers excluded).",
                                total.dns.lookup_seconds));
  return out;
}

}  // namespace shadowrelay::api::metrics
