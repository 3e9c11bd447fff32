// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/relay_sample.h"

#include <algorithm>

namespace shadowrelay::relay {

namespace {
constexpr double kKiB = 1024;
constexpr std::array<double, 12> kConnectionBytes = {
    kKiB,         4 * kKiB,         16 * kKiB,         64 * kKiB,        256 * kKiB,
    1024 * kKiB,  4096 * kKiB,      16384 * kKiB,      65536 * kKiB,     262144 * kKiB,
    1048576 * kKiB, 4194304 * kKiB};
constexpr std::array<double, 12> kConnectionSeconds = {0.1, 0.5, 1,   5,    10,   30,
                                                       60,  300, 900, 1800, 3600, 14400};
// A probe's first flight: nothing, a few bytes, around a salt and a header, a full request.
constexpr std::array<double, 12> kProbeBytes = {0,  16,  32,  50,   64,   100,
                                                128, 256, 512, 1024, 4096, 65536};
constexpr std::array<double, 10> kDnsSeconds = {0.001, 0.005, 0.01, 0.025, 0.05,
                                                0.1,   0.25,  0.5,  1,     10};
}  // namespace

std::span<const double> connectionBytesBounds() { return kConnectionBytes; }
std::span<const double> connectionSecondsBounds() { return kConnectionSeconds; }
std::span<const double> probeBytesBounds() { return kProbeBytes; }
std::span<const double> dnsSecondsBounds() { return kDnsSeconds; }

FixedHistogram::FixedHistogram(std::span<const double> bounds)
    : bounds_(bounds), buckets_(bounds.size() + 1, 0) {}

void FixedHistogram::observe(double value) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  ++buckets_[static_cast<size_t>(it - bounds_.begin())];
  sum_ += value;
  ++count_;
}

void FixedHistogram::add(const FixedHistogram& other) {
  for (size_t i = 0; i < buckets_.size() && i < other.buckets_.size(); ++i) {
    buckets_[i] += other.buckets_[i];
  }
  sum_ += other.sum_;
  count_ += other.count_;
}

SR_STATS_DEFINE_FIELDS(UserTraffic, SR_USER_TRAFFIC)
SR_STATS_DEFINE_FIELDS(DnsSample, SR_DNS_SAMPLE)
SR_STATS_DEFINE_HISTOGRAMS(DnsSample, SR_DNS_SAMPLE)
SR_STATS_DEFINE_FIELDS(WorkerSample, SR_WORKER_SAMPLE)
SR_STATS_DEFINE_HISTOGRAMS(WorkerSample, SR_WORKER_SAMPLE)

void UserTraffic::add(const UserTraffic& o) {
  addFields(*this, o);
  addEach(closed, o.closed);
  addEach(rate_limited_nanos, o.rate_limited_nanos);
}

const char* dnsOutcomeLabel(DnsOutcome outcome) {
  switch (outcome) {
    case DnsOutcome::Ok:
      return "ok";
    case DnsOutcome::NxDomain:
      return "nxdomain";
    case DnsOutcome::NoData:
      return "nodata";
    case DnsOutcome::Timeout:
      return "timeout";
    case DnsOutcome::ServerFailure:
      return "server_failure";
    case DnsOutcome::InvalidName:
      return "invalid_name";
    case DnsOutcome::Cancelled:
      return "cancelled";
    case DnsOutcome::Internal:
    case DnsOutcome::kCount:
      break;
  }
  return "internal";
}

void DnsSample::add(const DnsSample& o) {
  addEach(results, o.results);
  addFields(*this, o);
  addHistograms(*this, o);
}

void WorkerSample::add(const WorkerSample& o) {
  tcp.add(o.tcp);
  udp.add(o.udp);
  for (const auto& [name, traffic] : o.users) users[name].add(traffic);
  retired_users.add(o.retired_users);
  dns.add(o.dns);
  addFields(*this, o);
  addHistograms(*this, o);
}

}  // namespace shadowrelay::relay
