// SPDX-License-Identifier: Apache-2.0
#pragma once
// Stats structs whose fields are declared once, by an X-macro (Envoy's ALL_TCP_PROXY_STATS).
// A struct's list macro, e.g. SR_UDP_STATS(FIELD, HISTOGRAM), calls
//   FIELD(name, key, metric, labels)  for a uint64_t member, summed by add();
//   HISTOGRAM(name, bounds, metric)   for a FixedHistogram member with bounds() as its bounds;
// where `key` is the field's name in the log summary ("name", or "group.name" shown as
// group{name=..}), `metric` the Metric family it feeds (metric_families.h; None: the log only)
// and `labels` the fixed labels of its series ("label=value,label=value", or "").
// The struct declares its members with SR_STATS_MEMBERS(LIST) and the static tables
// `fields()` (and `histograms()`), which its .cc defines with SR_STATS_DEFINE_FIELDS(Type, LIST)
// (and SR_STATS_DEFINE_HISTOGRAMS). add(), summary() and the exporter loop over the tables.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "relay/stats/metric_families.h"

namespace shadowrelay::relay {

class FixedHistogram;

template <typename Stats>
struct FieldSpec {
  uint64_t Stats::*member;
  absl::string_view key;
  Metric metric;
  absl::string_view labels;
};

template <typename Stats>
struct HistogramSpec {
  FixedHistogram Stats::*member;
  Metric metric;
};

#define SR_STATS_FIELD_MEMBER(name, key, metric, labels) uint64_t name = 0;
#define SR_STATS_HISTOGRAM_MEMBER(name, bounds, metric) FixedHistogram name{bounds()};
#define SR_STATS_IGNORE(...)
#define SR_STATS_MEMBERS(LIST) LIST(SR_STATS_FIELD_MEMBER, SR_STATS_HISTOGRAM_MEMBER)

#define SR_STATS_FIELD_SPEC(name, key, metric, labels) \
  {&Self::name, key, ::shadowrelay::relay::Metric::metric, labels},
#define SR_STATS_HISTOGRAM_SPEC(name, bounds, metric) \
  {&Self::name, ::shadowrelay::relay::Metric::metric},

/// Defines `static std::span<const FieldSpec<Type>> Type::fields()`: the FIELDs of LIST in order.
#define SR_STATS_DEFINE_FIELDS(Type, LIST) \
  SR_STATS_DEFINE_TABLE(Type, FieldSpec, fields, LIST(SR_STATS_FIELD_SPEC, SR_STATS_IGNORE))

/// Defines `static std::span<const HistogramSpec<Type>> Type::histograms()` likewise.
#define SR_STATS_DEFINE_HISTOGRAMS(Type, LIST)           \
  SR_STATS_DEFINE_TABLE(Type, HistogramSpec, histograms, \
                        LIST(SR_STATS_IGNORE, SR_STATS_HISTOGRAM_SPEC))

#define SR_STATS_DEFINE_TABLE(Type, Spec, function, ...)                        \
  std::span<const ::shadowrelay::relay::Spec<Type>> Type::function() {          \
    using Self = Type;                                                          \
    static constexpr ::shadowrelay::relay::Spec<Self> kTable[] = {__VA_ARGS__}; \
    return kTable;                                                              \
  }

/// to += from, for every field of Stats::fields().
template <typename Stats>
void addFields(Stats& to, const Stats& from) {
  for (const FieldSpec<Stats>& f : Stats::fields()) to.*f.member += from.*f.member;
}

/// to += from, for every histogram of Stats::histograms() (FixedHistogram must be complete).
template <typename Stats>
void addHistograms(Stats& to, const Stats& from) {
  for (const HistogramSpec<Stats>& h : Stats::histograms()) (to.*h.member).add(from.*h.member);
}

/// to[i] += from[i] for every i.
template <size_t N>
void addEach(std::array<uint64_t, N>& to, const std::array<uint64_t, N>& from) {
  for (size_t i = 0; i < N; ++i) to[i] += from[i];
}

/// "key=value key=value ...", in order; consecutive "group.name" keys become one
/// "group{name=value name=value}".
std::string formatSummary(std::span<const std::pair<absl::string_view, uint64_t>> items);

/// formatSummary() of every field of Stats::fields().
template <typename Stats>
std::string summarizeFields(const Stats& stats) {
  std::vector<std::pair<absl::string_view, uint64_t>> items;
  items.reserve(Stats::fields().size());
  for (const FieldSpec<Stats>& f : Stats::fields()) items.emplace_back(f.key, stats.*f.member);
  return formatSummary(items);
}

}  // namespace shadowrelay::relay
