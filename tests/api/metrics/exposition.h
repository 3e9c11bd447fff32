// SPDX-License-Identifier: Apache-2.0
#pragma once
// Test helpers: GET a page over a plain loopback socket, and parse the Prometheus text format.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::testing {

struct HttpResponse {
  int status = 0;
  std::string status_line;
  std::string headers;  // the status line and the header lines, each ending in CRLF
  std::string body;
};

/// `method` http://host:port/path with HTTP/1.0 (the server closes after the answer) and the
/// extra header lines `headers` (each ending in CRLF). Blocking, with a 10 s receive timeout.
absl::StatusOr<HttpResponse> httpRequest(const std::string& host, uint16_t port,
                                         const std::string& method, const std::string& path,
                                         const std::string& headers = "");

/// GET: the body of a 200 answer, else an error naming the status line.
absl::StatusOr<std::string> httpGet(const std::string& host, uint16_t port,
                                    const std::string& path, const std::string& headers = "");

using LabelSet = std::map<std::string, std::string>;

struct MetricSample {
  std::string name;  // as written, e.g. "x_bucket" for a histogram "x"
  LabelSet labels;
  double value = 0;
};

/// One scrape, parsed.
struct Exposition {
  std::vector<MetricSample> samples;
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram|...
  std::map<std::string, std::string> help;   // family -> HELP text

  /// The value of the sample with exactly these labels; nullopt if there is none.
  std::optional<double> value(const std::string& name, const LabelSet& labels = {}) const;
  /// Every sample named `name`.
  std::vector<MetricSample> series(const std::string& name) const;
  /// The family a sample belongs to: its name, or for histograms and summaries the name
  /// without _bucket/_sum/_count when that family is declared.
  std::string familyOf(const std::string& sample_name) const;
};

/// Parses the text exposition format (# HELP, # TYPE, samples with escaped label values).
absl::StatusOr<Exposition> parseExposition(absl::string_view text);

/// "name{a="1",b="2"}" for messages.
std::string seriesKey(const std::string& name, const LabelSet& labels);

}  // namespace shadowrelay::testing
