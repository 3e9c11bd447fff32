// SPDX-License-Identifier: Apache-2.0
#include "api/metrics/metrics_exporter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "relay/stats/tcp_stats.h"
#include "tests/api/metrics/exposition.h"
#include "tests/api/metrics/sample_data.h"

namespace shadowrelay::api::metrics {
namespace {

using relay::CloseReason;
using shadowrelay::testing::Exposition;
using shadowrelay::testing::grownSample;
using shadowrelay::testing::LabelSet;
using shadowrelay::testing::MetricSample;
using shadowrelay::testing::seriesKey;

const std::vector<std::string> kStatuses = {"ok",
                                            "auth_failed",
                                            "replay",
                                            "timeout_handshake",
                                            "timeout_idle",
                                            "timeout_connect",
                                            "dns_failed",
                                            "target_refused",
                                            "target_private",
                                            "error",
                                            "stale_timestamp"};

MetricsOptions loopbackOptions() {
  MetricsOptions o;
  o.listen = "127.0.0.1:0";
  o.workers = 2;
  o.version = "1.2.3";
  o.crypto_provider = "openssl";
  o.users_by_state = [] {
    return std::vector<std::pair<std::string, size_t>>{
        {"active", 3}, {"disabled", 1}, {"expired", 1}, {"over_quota", 0}};
  };
  o.user_quotas = [] {
    return std::vector<UserQuotaSample>{{"alice", 900, 1000}, {"bob", 42, 0}};
  };
  return o;
}

std::unique_ptr<MetricsExporter> startOrDie(MetricsOptions options) {
  auto exporter = MetricsExporter::start(std::move(options));
  EXPECT_TRUE(exporter.ok()) << exporter.status();
  return exporter.ok() ? *std::move(exporter) : nullptr;
}

Exposition scrape(const MetricsExporter& exporter) {
  auto body = shadowrelay::testing::httpGet("127.0.0.1", exporter.port(), "/metrics");
  EXPECT_TRUE(body.ok()) << body.status();
  if (!body.ok()) {
    return {};
  }
  auto parsed = shadowrelay::testing::parseExposition(*body);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *std::move(parsed) : Exposition{};
}

double valueOr(const Exposition& e, const std::string& name, const LabelSet& labels,
               double fallback = -1) {
  const auto v = e.value(name, labels);
  EXPECT_TRUE(v.has_value()) << "missing " << seriesKey(name, labels);
  return v.value_or(fallback);
}

size_t at(CloseReason reason) { return static_cast<size_t>(reason); }

// Two crafted samples whose sums are checked label set by label set.
relay::WorkerSample workerZero() {
  relay::WorkerSample s;
  s.tcp.accepted = 40;
  s.tcp.accept_errors = 1;
  s.tcp.closed[at(CloseReason::HandshakeTimeout)] = 3;
  s.tcp.closed[at(CloseReason::IdleTimeout)] = 5;
  s.tcp.closed[at(CloseReason::ConnectTimeout)] = 1;
  auto& alice = s.users["alice"];
  alice.tcp_bytes_up = 100;
  alice.tcp_bytes_down = 200;
  alice.udp_packets_up = 4;
  alice.udp_packets_down = 6;
  alice.udp_bytes_up = 400;
  alice.udp_bytes_down = 600;
  alice.refused_over_limit = 2;
  alice.refused_over_devices = 4;
  alice.closed[at(CloseReason::Done)] = 7;
  alice.closed[at(CloseReason::Shutdown)] = 1;
  alice.closed[at(CloseReason::IdleTimeout)] = 5;
  auto& nobody = s.users[""];
  nobody.closed[at(CloseReason::AuthFailed)] = 3;
  nobody.closed[at(CloseReason::BadAddress)] = 2;
  nobody.closed[at(CloseReason::HandshakeTimeout)] = 3;
  s.connection_bytes.observe(500);     // le 1024
  s.connection_bytes.observe(3000);    // le 4096
  s.connection_seconds.observe(0.05);  // le 0.1
  s.probe_bytes.observe(0);            // le 0
  s.probe_bytes.observe(50);           // le 50
  s.dns.results[static_cast<size_t>(relay::DnsOutcome::Ok)] = 9;
  s.dns.results[static_cast<size_t>(relay::DnsOutcome::Timeout)] = 2;
  s.dns.cache_hits = 6;
  s.dns.cache_misses = 5;
  s.dns.lookup_seconds.observe(0.004);  // le 0.005
  s.udp.dropped_open = 1;
  s.udp.dropped_foreign = 2;
  s.udp.associations = 10;
  s.udp.evictions = 1;
  s.udp.expirations = 4;
  s.tcp_active = 3;
  s.udp_associations_active = 2;
  return s;
}

relay::WorkerSample workerOne() {
  relay::WorkerSample s;
  s.tcp.accepted = 60;
  s.tcp.closed[at(CloseReason::HandshakeTimeout)] = 1;
  s.tcp.closed[at(CloseReason::ConnectTimeout)] = 2;
  auto& alice = s.users["alice"];
  alice.tcp_bytes_up = 1000;
  alice.tcp_bytes_down = 2000;
  alice.closed[at(CloseReason::ClientClosed)] = 2;
  alice.closed[at(CloseReason::ConnectTimeout)] = 2;
  auto& bob = s.users["bob"];
  bob.udp_bytes_up = 7;
  bob.udp_bytes_down = 9;
  bob.udp_packets_up = 1;
  bob.udp_packets_down = 2;
  bob.closed[at(CloseReason::IoError)] = 1;
  bob.closed[at(CloseReason::BadStream)] = 1;
  bob.closed[at(CloseReason::TargetRefused)] = 1;
  bob.closed[at(CloseReason::ConnectFailed)] = 4;
  bob.closed[at(CloseReason::ResolveFailed)] = 3;
  auto& nobody = s.users[""];
  nobody.closed[at(CloseReason::ReplayedSalt)] = 1;
  nobody.closed[at(CloseReason::StaleTimestamp)] = 2;
  nobody.closed[at(CloseReason::AuthFailed)] = 1;
  s.connection_bytes.observe(5e9);  // +Inf only
  s.connection_seconds.observe(20000);
  s.probe_bytes.observe(70000);
  s.dns.results[static_cast<size_t>(relay::DnsOutcome::Ok)] = 1;
  s.dns.results[static_cast<size_t>(relay::DnsOutcome::NxDomain)] = 4;
  s.dns.cache_hits = 1;
  s.dns.lookup_seconds.observe(0.3);  // le 0.5
  s.udp.dropped_open = 2;
  s.udp.dropped_too_big = 5;
  s.udp.associations = 5;
  s.udp.expirations = 1;
  s.tcp_active = 4;
  s.udp_associations_active = 1;
  return s;
}

/// Bucket upper bound of a _bucket sample.
double le(const MetricSample& s) {
  const std::string& text = s.labels.at("le");
  if (text == "+Inf") {
    return std::numeric_limits<double>::infinity();
  }
  double v = 0;
  EXPECT_TRUE(absl::SimpleAtod(text, &v)) << text;
  return v;
}

TEST(MetricsExporterTest, SumsWorkersPerLabelSet) {
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  ASSERT_GT(exporter->port(), 0);
  exporter->publish(0, workerZero());
  exporter->publish(1, workerOne());
  const Exposition e = scrape(*exporter);

  const std::string bytes = "shadowrelay_data_bytes_total";
  EXPECT_EQ(valueOr(e, bytes, {{"proto", "tcp"}, {"direction", "upload"}, {"user", "alice"}}),
            1100);
  EXPECT_EQ(valueOr(e, bytes, {{"proto", "tcp"}, {"direction", "download"}, {"user", "alice"}}),
            2200);
  EXPECT_EQ(valueOr(e, bytes, {{"proto", "udp"}, {"direction", "upload"}, {"user", "alice"}}), 400);
  EXPECT_EQ(valueOr(e, bytes, {{"proto", "udp"}, {"direction", "download"}, {"user", "bob"}}), 9);
  EXPECT_EQ(valueOr(e, bytes, {{"proto", "tcp"}, {"direction", "upload"}, {"user", "bob"}}), 0);
  EXPECT_EQ(valueOr(e, bytes, {{"proto", "tcp"}, {"direction", "upload"}, {"user", ""}}), 0);
  EXPECT_EQ(e.series(bytes).size(), 3u * 4u);  // users "", alice, bob

  const std::string packets = "shadowrelay_udp_packets_total";
  EXPECT_EQ(valueOr(e, packets, {{"direction", "upload"}, {"user", "alice"}}), 4);
  EXPECT_EQ(valueOr(e, packets, {{"direction", "download"}, {"user", "alice"}}), 6);
  EXPECT_EQ(valueOr(e, packets, {{"direction", "download"}, {"user", "bob"}}), 2);

  EXPECT_EQ(valueOr(e, "shadowrelay_tcp_connections_opened_total", {}), 100);
  EXPECT_EQ(valueOr(e, "shadowrelay_tcp_connections_active", {}), 7);
  EXPECT_EQ(valueOr(e, "shadowrelay_tcp_accept_errors_total", {}), 1);
  EXPECT_EQ(valueOr(e, "shadowrelay_tcp_refused_over_limit_total", {{"user", "alice"}}), 2);
  EXPECT_EQ(valueOr(e, "shadowrelay_tcp_refused_over_limit_total", {{"user", "bob"}}), 0);
  EXPECT_EQ(valueOr(e, "shadowrelay_user_refused_total",
                    {{"user", "alice"}, {"reason", "over_devices"}}),
            4);
  EXPECT_EQ(valueOr(e, "shadowrelay_user_refused_total",
                    {{"user", "bob"}, {"reason", "over_devices"}}),
            0);

  // Several close reasons fold into one status.
  const std::string closed = "shadowrelay_tcp_connections_closed_total";
  const std::map<std::pair<std::string, std::string>, double> want_closed = {
      {{"alice", "ok"}, 10},  // Done 7 + Shutdown 1 + ClientClosed 2
      {{"alice", "timeout_idle"}, 5},
      {{"alice", "timeout_connect"}, 2},
      {{"alice", "error"}, 0},
      {{"bob", "error"}, 2},  // IoError + BadStream
      {{"bob", "target_private"}, 1},
      {{"bob", "target_refused"}, 4},
      {{"bob", "dns_failed"}, 3},
      {{"bob", "ok"}, 0},
      {{"", "auth_failed"}, 6},  // AuthFailed 3 + 1, BadAddress 2
      {{"", "replay"}, 1},  // the replayed salt only: stale timestamps have their own status
      {{"", "stale_timestamp"}, 2},
      {{"", "timeout_handshake"}, 3},
      {{"", "ok"}, 0},
  };
  for (const auto& [key, want] : want_closed) {
    EXPECT_EQ(valueOr(e, closed, {{"user", key.first}, {"status", key.second}}), want)
        << key.first << " " << key.second;
  }
  EXPECT_EQ(e.series(closed).size(), 3u * kStatuses.size());

  const std::string timeouts = "shadowrelay_timeouts_total";
  EXPECT_EQ(valueOr(e, timeouts, {{"kind", "handshake"}}), 4);
  EXPECT_EQ(valueOr(e, timeouts, {{"kind", "idle"}}), 5);
  EXPECT_EQ(valueOr(e, timeouts, {{"kind", "connect"}}), 3);
  EXPECT_EQ(valueOr(e, timeouts, {{"kind", "dns"}}), 2);
  EXPECT_EQ(valueOr(e, timeouts, {{"kind", "udp"}}), 5);

  EXPECT_EQ(valueOr(e, "shadowrelay_udp_associations_active", {}), 3);
  EXPECT_EQ(valueOr(e, "shadowrelay_udp_associations_created_total", {}), 15);
  EXPECT_EQ(valueOr(e, "shadowrelay_udp_associations_evicted_total", {}), 1);
  const std::string dropped = "shadowrelay_udp_dropped_total";
  EXPECT_EQ(valueOr(e, dropped, {{"reason", "open"}}), 3);
  EXPECT_EQ(valueOr(e, dropped, {{"reason", "foreign"}}), 2);
  EXPECT_EQ(valueOr(e, dropped, {{"reason", "too_big"}}), 5);
  EXPECT_EQ(valueOr(e, dropped, {{"reason", "replay"}}), 0);

  const std::string queries = "shadowrelay_dns_queries_total";
  EXPECT_EQ(valueOr(e, queries, {{"result", "ok"}}), 10);
  EXPECT_EQ(valueOr(e, queries, {{"result", "nxdomain"}}), 4);
  EXPECT_EQ(valueOr(e, queries, {{"result", "timeout"}}), 2);
  EXPECT_EQ(valueOr(e, queries, {{"result", "internal"}}), 0);
  EXPECT_EQ(valueOr(e, "shadowrelay_dns_cache_hits_total", {}), 7);
  EXPECT_EQ(valueOr(e, "shadowrelay_dns_cache_misses_total", {}), 5);

  // Histograms: cumulative buckets, +Inf == _count.
  const std::string cb = "shadowrelay_tcp_connection_bytes";
  EXPECT_EQ(valueOr(e, cb + "_bucket", {{"le", "1024"}}), 1);
  EXPECT_EQ(valueOr(e, cb + "_bucket", {{"le", "4096"}}), 2);
  EXPECT_EQ(valueOr(e, cb + "_bucket", {{"le", "4294967296"}}), 2);
  EXPECT_EQ(valueOr(e, cb + "_bucket", {{"le", "+Inf"}}), 3);
  EXPECT_EQ(valueOr(e, cb + "_count", {}), 3);
  EXPECT_DOUBLE_EQ(valueOr(e, cb + "_sum", {}), 500 + 3000 + 5e9);
  const std::string pb = "shadowrelay_probe_bytes";
  EXPECT_EQ(valueOr(e, pb + "_bucket", {{"le", "0"}}), 1);
  EXPECT_EQ(valueOr(e, pb + "_bucket", {{"le", "32"}}), 1);
  EXPECT_EQ(valueOr(e, pb + "_bucket", {{"le", "50"}}), 2);
  EXPECT_EQ(valueOr(e, pb + "_bucket", {{"le", "65536"}}), 2);
  EXPECT_EQ(valueOr(e, pb + "_bucket", {{"le", "+Inf"}}), 3);
  const std::string cs = "shadowrelay_tcp_connection_duration_seconds";
  EXPECT_EQ(valueOr(e, cs + "_bucket", {{"le", "0.1"}}), 1);
  EXPECT_EQ(valueOr(e, cs + "_bucket", {{"le", "14400"}}), 1);
  EXPECT_EQ(valueOr(e, cs + "_count", {}), 2);
  const std::string dl = "shadowrelay_dns_lookup_duration_seconds";
  EXPECT_EQ(valueOr(e, dl + "_bucket", {{"le", "0.001"}}), 0);
  EXPECT_EQ(valueOr(e, dl + "_bucket", {{"le", "0.005"}}), 1);
  EXPECT_EQ(valueOr(e, dl + "_bucket", {{"le", "0.25"}}), 1);
  EXPECT_EQ(valueOr(e, dl + "_bucket", {{"le", "0.5"}}), 2);
  EXPECT_DOUBLE_EQ(valueOr(e, dl + "_sum", {}), 0.304);

  EXPECT_EQ(valueOr(e, "shadowrelay_users", {{"state", "active"}}), 3);
  EXPECT_EQ(valueOr(e, "shadowrelay_users", {{"state", "disabled"}}), 1);
  EXPECT_EQ(valueOr(e, "shadowrelay_users", {{"state", "expired"}}), 1);
  EXPECT_EQ(valueOr(e, "shadowrelay_users", {{"state", "over_quota"}}), 0);
  EXPECT_EQ(valueOr(e, "shadowrelay_user_quota_used_bytes", {{"user", "alice"}}), 900);
  EXPECT_EQ(valueOr(e, "shadowrelay_user_quota_used_bytes", {{"user", "bob"}}), 42);
  EXPECT_EQ(valueOr(e, "shadowrelay_user_quota_bytes", {{"user", "alice"}}), 1000);
  EXPECT_EQ(e.series("shadowrelay_user_quota_bytes").size(), 1u);  // bob has no quota
  EXPECT_EQ(
      valueOr(e, "shadowrelay_build_info", {{"version", "1.2.3"}, {"crypto_provider", "openssl"}}),
      1);
}

TEST(MetricsExporterTest, ANewerSampleReplacesTheWorkersSlot) {
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  exporter->publish(0, grownSample(0, 1));
  exporter->publish(1, grownSample(1, 1));
  exporter->publish(0, grownSample(0, 4));
  const Exposition e = scrape(*exporter);
  const double want =
      static_cast<double>(grownSample(0, 4).tcp.accepted + grownSample(1, 1).tcp.accepted);
  EXPECT_EQ(valueOr(e, "shadowrelay_tcp_connections_opened_total", {}), want);
  EXPECT_EQ(exporter->total().tcp.accepted, static_cast<uint64_t>(want));
}

TEST(MetricsExporterTest, CountsEachWorkersPublishes) {
  auto exporter = startOrDie(loopbackOptions());  // 2 workers
  ASSERT_NE(exporter, nullptr);
  Exposition e = scrape(*exporter);
  EXPECT_EQ(valueOr(e, "shadowrelay_worker_publishes_total", {{"worker", "0"}}), 0);
  EXPECT_EQ(valueOr(e, "shadowrelay_worker_publishes_total", {{"worker", "1"}}), 0);
  exporter->publish(0, grownSample(0, 1));
  exporter->publish(0, grownSample(0, 2));
  exporter->publish(3, grownSample(3, 1));  // beyond the count: gets its series, as do 1 and 2
  EXPECT_EQ(exporter->publishCounts(), (std::vector<uint64_t>{2, 0, 0, 1}));
  e = scrape(*exporter);
  EXPECT_EQ(e.series("shadowrelay_worker_publishes_total").size(), 4u);
  EXPECT_EQ(valueOr(e, "shadowrelay_worker_publishes_total", {{"worker", "0"}}), 2);
  EXPECT_EQ(valueOr(e, "shadowrelay_worker_publishes_total", {{"worker", "1"}}), 0);
  EXPECT_EQ(valueOr(e, "shadowrelay_worker_publishes_total", {{"worker", "3"}}), 1);
}

TEST(MetricsExporterTest, AWorkerBeyondTheCountIsStillSummed) {
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  relay::WorkerSample s;
  s.tcp.accepted = 5;
  exporter->publish(0, s);
  exporter->publish(6, s);
  EXPECT_EQ(valueOr(scrape(*exporter), "shadowrelay_tcp_connections_opened_total", {}), 10);
}

TEST(MetricsExporterTest, HistogramBucketsAreCumulative) {
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  exporter->publish(0, grownSample(0, 37));
  exporter->publish(1, grownSample(1, 23));
  const Exposition e = scrape(*exporter);
  const std::vector<std::string> histograms = {
      "shadowrelay_tcp_connection_bytes", "shadowrelay_tcp_connection_duration_seconds",
      "shadowrelay_probe_bytes", "shadowrelay_dns_lookup_duration_seconds"};
  for (const auto& name : histograms) {
    SCOPED_TRACE(name);
    EXPECT_EQ(e.types.count(name) ? e.types.at(name) : "", "histogram");
    std::vector<MetricSample> buckets = e.series(name + "_bucket");
    ASSERT_GE(buckets.size(), 2u);
    // As served: le ascending, counts non-decreasing, ending with +Inf == _count.
    for (size_t i = 1; i < buckets.size(); ++i) {
      EXPECT_LT(le(buckets[i - 1]), le(buckets[i]));
      EXPECT_LE(buckets[i - 1].value, buckets[i].value);
    }
    EXPECT_TRUE(std::isinf(le(buckets.back())));
    const double count = valueOr(e, name + "_count", {});
    EXPECT_EQ(buckets.back().value, count);
    EXPECT_EQ(count, 60);  // 37 + 23 observations
    EXPECT_GT(valueOr(e, name + "_sum", {}), 0);
  }
}

TEST(MetricsExporterTest, FoldsUsersWhenPerUserIsOff) {
  MetricsOptions options = loopbackOptions();
  options.per_user = false;
  auto exporter = startOrDie(options);
  ASSERT_NE(exporter, nullptr);
  exporter->publish(0, workerZero());
  exporter->publish(1, workerOne());
  const Exposition e = scrape(*exporter);
  for (const char* family :
       {"shadowrelay_data_bytes_total", "shadowrelay_tcp_connections_closed_total",
        "shadowrelay_udp_packets_total", "shadowrelay_tcp_refused_over_limit_total"}) {
    const auto series = e.series(family);
    EXPECT_FALSE(series.empty()) << family;
    for (const auto& s : series) {
      EXPECT_EQ(s.labels.at("user"), "") << seriesKey(s.name, s.labels);
    }
  }
  const std::string bytes = "shadowrelay_data_bytes_total";
  EXPECT_EQ(valueOr(e, bytes, {{"proto", "tcp"}, {"direction", "upload"}, {"user", ""}}), 1100);
  EXPECT_EQ(valueOr(e, bytes, {{"proto", "udp"}, {"direction", "download"}, {"user", ""}}), 609);
  const std::string closed = "shadowrelay_tcp_connections_closed_total";
  EXPECT_EQ(valueOr(e, closed, {{"user", ""}, {"status", "ok"}}), 10);
  EXPECT_EQ(valueOr(e, closed, {{"user", ""}, {"status", "auth_failed"}}), 6);
  EXPECT_EQ(valueOr(e, closed, {{"user", ""}, {"status", "error"}}), 2);
  EXPECT_EQ(e.series(closed).size(), kStatuses.size());
  EXPECT_EQ(valueOr(e, "shadowrelay_udp_packets_total", {{"direction", "upload"}, {"user", ""}}),
            5);  // Quotas are per user by nature: not exported without user labels.
  EXPECT_EQ(e.types.count("shadowrelay_user_quota_used_bytes"), 0u);
  EXPECT_EQ(e.types.count("shadowrelay_user_quota_bytes"), 0u);
}

TEST(MetricsExporterTest, ExportsEveryFamilyBeforeAnySample) {
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  const Exposition e = scrape(*exporter);
  const std::map<std::string, std::string> want = {
      {"shadowrelay_data_bytes_total", "counter"},
      {"shadowrelay_tcp_connection_bytes", "histogram"},
      {"shadowrelay_tcp_connection_duration_seconds", "histogram"},
      {"shadowrelay_tcp_connections_opened_total", "counter"},
      {"shadowrelay_tcp_connections_closed_total", "counter"},
      {"shadowrelay_tcp_connections_active", "gauge"},
      {"shadowrelay_tcp_refused_over_limit_total", "counter"},
      {"shadowrelay_user_refused_total", "counter"},
      {"shadowrelay_user_rate_limited_seconds_total", "counter"},
      {"shadowrelay_tcp_accept_errors_total", "counter"},
      {"shadowrelay_timeouts_total", "counter"},
      {"shadowrelay_probe_bytes", "histogram"},
      {"shadowrelay_udp_associations_active", "gauge"},
      {"shadowrelay_udp_associations_created_total", "counter"},
      {"shadowrelay_udp_associations_evicted_total", "counter"},
      {"shadowrelay_udp_packets_total", "counter"},
      {"shadowrelay_udp_dropped_total", "counter"},
      {"shadowrelay_udp_gost_framed_total", "counter"},
      {"shadowrelay_dns_queries_total", "counter"},
      {"shadowrelay_dns_cache_hits_total", "counter"},
      {"shadowrelay_dns_cache_misses_total", "counter"},
      {"shadowrelay_dns_lookup_duration_seconds", "histogram"},
      {"shadowrelay_users", "gauge"},
      {"shadowrelay_user_quota_used_bytes", "gauge"},
      {"shadowrelay_user_quota_bytes", "gauge"},
      {"shadowrelay_user_refused_total", "counter"},
      {"shadowrelay_build_info", "gauge"},
      {"shadowrelay_worker_publishes_total", "counter"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_virtual_memory_bytes", "gauge"},
      {"process_open_fds", "gauge"},
      {"process_max_fds", "gauge"},
      {"process_cpu_seconds_total", "counter"},
      {"process_start_time_seconds", "gauge"},
  };
  for (const auto& [name, type] : want) {
    const auto it = e.types.find(name);
    ASSERT_NE(it, e.types.end()) << name << " is not exported";
    EXPECT_EQ(it->second, type) << name;
    EXPECT_TRUE(e.help.count(name) && !e.help.at(name).empty()) << name << " has no HELP";
    EXPECT_FALSE(e.series(it->second == "histogram" ? name + "_count" : name).empty()) << name;
  }
  // Fixed label sets are complete even at zero.
  for (const auto& status : kStatuses) {
    EXPECT_EQ(
        valueOr(e, "shadowrelay_tcp_connections_closed_total", {{"user", ""}, {"status", status}}),
        0);
  }
  for (const char* kind : {"handshake", "idle", "connect", "dns", "udp"}) {
    EXPECT_EQ(valueOr(e, "shadowrelay_timeouts_total", {{"kind", kind}}), 0);
  }
  for (const char* reason : {"open", "replay", "address", "refused", "over_quota", "resolve",
                             "send", "too_big", "fragment", "foreign", "stale_timestamp",
                             "replayed_packet_id", "session", "trial_budget",
                             "user_associations", "memory", "revoked", "gost_queue",
                             "gost_malformed", "over_rate"}) {
    EXPECT_EQ(valueOr(e, "shadowrelay_udp_dropped_total", {{"reason", reason}}), 0);
  }
  EXPECT_EQ(e.series("shadowrelay_udp_dropped_total").size(), 20u);
  for (const char* direction : {"upload", "download"}) {
    EXPECT_EQ(valueOr(e, "shadowrelay_udp_gost_framed_total", {{"direction", direction}}), 0);
  }
  for (const char* result : {"ok", "nxdomain", "nodata", "timeout", "server_failure",
                             "invalid_name", "cancelled", "internal"}) {
    EXPECT_EQ(valueOr(e, "shadowrelay_dns_queries_total", {{"result", result}}), 0);
  }
  for (const char* direction : {"upload", "download"}) {
    for (const char* proto : {"tcp", "udp"}) {
      EXPECT_EQ(valueOr(e, "shadowrelay_data_bytes_total",
                        {{"proto", proto}, {"direction", direction}, {"user", ""}}),
                0);
    }
  }
  EXPECT_GT(valueOr(e, "process_resident_memory_bytes", {}), 0);
  EXPECT_GT(valueOr(e, "process_open_fds", {}), 0);
}

TEST(MetricsExporterTest, UserDevicesGaugePerUserOrSummed) {
  MetricsOptions options = loopbackOptions();
  options.user_devices = [] {
    return std::vector<std::pair<std::string, size_t>>{{"bob", 1}, {"alice", 2}, {"carol", 0}};
  };
  auto exporter = startOrDie(options);
  ASSERT_NE(exporter, nullptr);
  Exposition e = scrape(*exporter);
  EXPECT_EQ(e.types["shadowrelay_user_devices"], "gauge");
  EXPECT_EQ(valueOr(e, "shadowrelay_user_devices", {{"user", "alice"}}), 2);
  EXPECT_EQ(valueOr(e, "shadowrelay_user_devices", {{"user", "bob"}}), 1);
  EXPECT_EQ(valueOr(e, "shadowrelay_user_devices", {{"user", "carol"}}), 0);
  // The refusal family exists from the start (a counter of the workers' samples).
  EXPECT_EQ(e.types["shadowrelay_user_refused_total"], "counter");
  exporter.reset();

  options.per_user = false;
  exporter = startOrDie(options);
  ASSERT_NE(exporter, nullptr);
  e = scrape(*exporter);
  EXPECT_EQ(valueOr(e, "shadowrelay_user_devices", {{"user", ""}}), 3);
  EXPECT_FALSE(e.value("shadowrelay_user_devices", {{"user", "alice"}}).has_value());
}

TEST(MetricsExporterTest, NoUsersGaugeWithoutACallback) {
  MetricsOptions options = loopbackOptions();
  options.users_by_state = nullptr;
  options.user_quotas = nullptr;
  auto exporter = startOrDie(options);
  ASSERT_NE(exporter, nullptr);
  const Exposition e = scrape(*exporter);
  EXPECT_EQ(e.types.count("shadowrelay_users"), 0u);
  EXPECT_EQ(e.types.count("shadowrelay_user_quota_used_bytes"), 0u);
  EXPECT_EQ(e.types.count("shadowrelay_build_info"), 1u);
}

TEST(MetricsExporterTest, CountersNeverDecreaseWhileWorkersPublish) {
  constexpr size_t kWorkers = 4;
  constexpr int kScrapes = 200;
  MetricsOptions options = loopbackOptions();
  options.workers = kWorkers;
  auto exporter = startOrDie(options);
  ASSERT_NE(exporter, nullptr);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rounds{0};
  std::thread publisher([&] {
    // Bounded: stops when told, or after 2 million rounds.
    for (uint64_t step = 1; step <= 2'000'000 && !stop.load(); ++step) {
      for (size_t w = 0; w < kWorkers; ++w) {
        exporter->publish(w, grownSample(w, step));
      }
      rounds.store(step);
    }
  });

  std::map<std::string, double> last;  // series key -> last value, counters only
  std::map<std::string, double> first;
  size_t checked = 0;
  for (int i = 0; i < kScrapes; ++i) {
    const Exposition e = scrape(*exporter);
    for (const auto& s : e.samples) {
      const std::string family = e.familyOf(s.name);
      const auto type = e.types.find(family);
      ASSERT_NE(type, e.types.end()) << s.name;
      const bool monotonic = type->second == "counter" || type->second == "histogram" ||
                             (type->second == "summary" && s.name != family);
      if (!monotonic) {
        continue;
      }
      const std::string key = seriesKey(s.name, s.labels);
      const auto it = last.find(key);
      if (it != last.end()) {
        ASSERT_GE(s.value, it->second) << key << " went backwards at scrape " << i;
        ++checked;
      } else {
        first[key] = s.value;
      }
      last[key] = s.value;
    }
  }
  stop.store(true);
  publisher.join();
  EXPECT_GT(checked, 1000u);
  EXPECT_GT(rounds.load(), 1u);
  // The scrapes saw the publisher's progress, so the comparisons above compared something.
  const std::string opened = "shadowrelay_tcp_connections_opened_total{}";
  ASSERT_EQ(last.count(opened), 1u);
  EXPECT_GT(last[opened], first[opened]);
}

TEST(MetricsExporterTest, ABusyAddressIsAnErrorNotACrash) {
  // Hold a listening socket on a free port.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(sin);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len), 0);
  const uint16_t busy = ntohs(sin.sin_port);

  MetricsOptions options = loopbackOptions();
  options.listen = "127.0.0.1:" + std::to_string(busy);
  auto exporter = MetricsExporter::start(options);
  ASSERT_FALSE(exporter.ok());
  EXPECT_EQ(exporter.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(exporter.status().message(), "in use")) << exporter.status();
  ::close(fd);

  // A second exporter on the first one's port.
  auto first = startOrDie(loopbackOptions());
  ASSERT_NE(first, nullptr);
  options.listen = "127.0.0.1:" + std::to_string(first->port());
  auto second = MetricsExporter::start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  // The first one still serves.
  EXPECT_TRUE(shadowrelay::testing::httpGet("127.0.0.1", first->port(), "/metrics").ok());
}

TEST(MetricsExporterTest, OffIsNotStarted) {
  MetricsOptions options;
  EXPECT_FALSE(options.enabled());  // off by default
  options.listen = "off";
  EXPECT_FALSE(options.enabled());
  auto exporter = MetricsExporter::start(options);
  ASSERT_FALSE(exporter.ok());
  EXPECT_EQ(exporter.status().code(), absl::StatusCode::kInvalidArgument);
  options.listen = "127.0.0.1:0";
  EXPECT_TRUE(options.enabled());
}

TEST(MetricsExporterTest, RejectsMalformedAddresses) {
  for (const char* listen :
       {"", "example.com:9100", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:port", "[::1]",
        "[nothost]:9100", "::1:9100", "300.1.1.1:9100"}) {
    MetricsOptions options = loopbackOptions();
    options.listen = listen;
    auto exporter = MetricsExporter::start(options);
    ASSERT_FALSE(exporter.ok()) << listen;
    EXPECT_EQ(exporter.status().code(), absl::StatusCode::kInvalidArgument) << listen;
  }
}

TEST(MetricsExporterTest, AcceptsLocalhostAndReportsTheBoundAddress) {
  MetricsOptions options = loopbackOptions();
  options.listen = "localhost:0";
  auto exporter = startOrDie(options);
  ASSERT_NE(exporter, nullptr);
  EXPECT_EQ(exporter->address(), "127.0.0.1:" + std::to_string(exporter->port()));
  EXPECT_TRUE(shadowrelay::testing::httpGet("127.0.0.1", exporter->port(), "/metrics").ok());
}

bool haveIpv6Loopback() {
  const int probe = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_addr = in6addr_loopback;
  const bool have_v6 =
      probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&sin6), sizeof(sin6)) == 0;
  if (probe >= 0) {
    ::close(probe);
  }
  return have_v6;
}

TEST(MetricsExporterTest, ServesOverIpv6) {
  if (!haveIpv6Loopback()) {
    GTEST_SKIP() << "no IPv6 loopback on this machine";
  }
  MetricsOptions options = loopbackOptions();
  options.listen = "[::1]:0";
  auto exporter = MetricsExporter::start(options);
  ASSERT_TRUE(exporter.ok()) << exporter.status();
  EXPECT_EQ((*exporter)->address(), "[::1]:" + std::to_string((*exporter)->port()));
  auto body = shadowrelay::testing::httpGet("::1", (*exporter)->port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_TRUE(absl::StrContains(*body, "shadowrelay_build_info"));
}

TEST(MetricsExporterTest, TheIpv6WildcardTakesIpv4Too) {
  if (!haveIpv6Loopback()) {
    GTEST_SKIP() << "no IPv6 loopback on this machine";
  }
  MetricsOptions options = loopbackOptions();
  options.listen = "[::]:0";
  auto exporter = startOrDie(options);
  ASSERT_NE(exporter, nullptr);
  EXPECT_TRUE(shadowrelay::testing::httpGet("::1", exporter->port(), "/metrics").ok());
  EXPECT_TRUE(shadowrelay::testing::httpGet("127.0.0.1", exporter->port(), "/metrics").ok());
}

TEST(MetricsExporterTest, ATokenIsRequiredWhenConfigured) {
  MetricsOptions options = loopbackOptions();
  options.token = "metrics-s3cret";
  auto exporter = startOrDie(options);
  ASSERT_NE(exporter, nullptr);
  using shadowrelay::testing::httpRequest;
  auto none = httpRequest("127.0.0.1", exporter->port(), "GET", "/metrics");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->status, 401);
  EXPECT_TRUE(absl::StrContains(none->headers, "WWW-Authenticate: Bearer")) << none->headers;
  EXPECT_FALSE(absl::StrContains(none->body, "shadowrelay_"));
  for (const char* wrong : {"Bearer metrics-s3cre", "Bearer metrics-s3cret2", "Basic abc",
                            "metrics-s3cret"}) {
    auto r = httpRequest("127.0.0.1", exporter->port(), "GET", "/metrics",
                         absl::StrCat("Authorization: ", wrong, "\r\n"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 401) << wrong;
  }
  auto good = httpRequest("127.0.0.1", exporter->port(), "GET", "/metrics",
                          "Authorization: Bearer metrics-s3cret\r\n");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->status, 200);
  EXPECT_TRUE(absl::StrContains(good->body, "shadowrelay_build_info"));
}

TEST(MetricsExporterTest, NoTokenNeededWithoutOne) {
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  auto r = shadowrelay::testing::httpRequest("127.0.0.1", exporter->port(), "GET", "/metrics");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(absl::StrContains(r->headers, "Content-Type: text/plain; version=0.0.4"))
      << r->headers;
}

TEST(MetricsExporterTest, OtherPathsAndMethodsAreRefused) {
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  using shadowrelay::testing::httpRequest;
  for (const char* path : {"/", "/metric", "/metrics/x", "/health"}) {
    auto r = httpRequest("127.0.0.1", exporter->port(), "GET", path);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 404) << path;
  }
  auto post = httpRequest("127.0.0.1", exporter->port(), "POST", "/metrics",
                          "Content-Length: 5\r\n\r\nhello");
  ASSERT_TRUE(post.ok()) << post.status();
  EXPECT_EQ(post->status, 405);
  EXPECT_TRUE(absl::StrContains(post->headers, "Allow: GET, HEAD")) << post->headers;
  auto head = httpRequest("127.0.0.1", exporter->port(), "HEAD", "/metrics");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
}

/// A TCP connection to 127.0.0.1:port that has sent `sent` and then nothing more.
int stalledConnection(uint16_t port, const std::string& sent) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)), 0);
  if (!sent.empty()) {
    EXPECT_EQ(::send(fd, sent.data(), sent.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(sent.size()));
  }
  return fd;
}

// Debian's civetweb served each connection on one of 2 threads until it completed: two clients
// that opened a connection and sent nothing (or half a request) stopped every scrape and the
// health probe until its 30 s timeout. Here many of both kinds stall while scrapes go through.
TEST(MetricsExporterTest, StalledClientsDoNotBlockAScrape) {
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  std::vector<int> stalled;
  for (int i = 0; i < 16; ++i) {
    stalled.push_back(stalledConnection(exporter->port(), ""));
    stalled.push_back(stalledConnection(exporter->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n"));
  }
  for (int i = 0; i < 5; ++i) {
    const auto started = std::chrono::steady_clock::now();
    auto body = shadowrelay::testing::httpGet("127.0.0.1", exporter->port(), "/metrics");
    const auto took = std::chrono::steady_clock::now() - started;
    ASSERT_TRUE(body.ok()) << body.status();
    EXPECT_TRUE(absl::StrContains(*body, "shadowrelay_build_info"));
    EXPECT_LT(took, std::chrono::seconds(2)) << "scrape " << i;
  }
  for (const int fd : stalled) {
    ::close(fd);
  }
}

// A connection that never completes its request is closed after request_timeout.
TEST(MetricsExporterTest, ASilentConnectionIsClosedAfterTheRequestTimeout) {
  MetricsOptions options = loopbackOptions();
  options.request_timeout = std::chrono::seconds(1);
  auto exporter = startOrDie(options);
  ASSERT_NE(exporter, nullptr);
  const int fd = stalledConnection(exporter->port(), "GET /metrics HTTP/1.1\r\n");
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const auto started = std::chrono::steady_clock::now();
  char buf[256];
  const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  const auto took = std::chrono::steady_clock::now() - started;
  ::close(fd);
  EXPECT_LE(n, 0) << "the server answered a request it never completely received";
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_GE(took, std::chrono::milliseconds(500));
}

TEST(MetricsExporterTest, CountsItsOwnScrapes) {
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  scrape(*exporter);
  scrape(*exporter);
  const Exposition e = scrape(*exporter);
  EXPECT_EQ(valueOr(e, "exposer_scrapes_total", {}), 2);  // before the third was counted
  EXPECT_GT(valueOr(e, "exposer_transferred_bytes_total", {}), 1000);
  EXPECT_EQ(e.types.at("exposer_request_latencies"), "summary");
  EXPECT_EQ(valueOr(e, "exposer_request_latencies_count", {}), 2);
}

// Threads of this process now (/proc/self/task).
size_t threadCount() {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)entry;
    ++n;
  }
  return n;
}

// Destruction is complete when it returns: the port is closed and every thread the exporter
// started (libmicrohttpd's pool) has been joined, promptly.
TEST(MetricsExporterTest, StopClosesThePortAndJoinsItsThreads) {
  const size_t threads_before = threadCount();
  auto exporter = startOrDie(loopbackOptions());
  ASSERT_NE(exporter, nullptr);
  const uint16_t port = exporter->port();
  ASSERT_TRUE(shadowrelay::testing::httpGet("127.0.0.1", port, "/metrics").ok());
  EXPECT_GT(threadCount(), threads_before);
  const auto stopping = std::chrono::steady_clock::now();
  exporter.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, std::chrono::seconds(1));
  EXPECT_EQ(threadCount(), threads_before);
  EXPECT_FALSE(shadowrelay::testing::httpGet("127.0.0.1", port, "/metrics").ok());
}

}  // namespace
}  // namespace shadowrelay::api::metrics
