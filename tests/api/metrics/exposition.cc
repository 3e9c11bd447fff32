// SPDX-License-Identifier: Apache-2.0
#include "tests/api/metrics/exposition.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace shadowrelay::testing {

namespace {

absl::Status errnoError(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == ':';
}

absl::StatusOr<double> parseValue(absl::string_view text) {
  const std::string s(absl::StripAsciiWhitespace(text));
  if (s.empty()) {
    return absl::InvalidArgumentError("empty value");
  }
  char* end = nullptr;
  const double value = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) {
    return absl::InvalidArgumentError(absl::StrCat("bad value \"", s, "\""));
  }
  return value;
}

/// Parses `{a="x",b="y"}` at the start of `rest`, consuming it.
absl::StatusOr<LabelSet> parseLabels(absl::string_view& rest) {
  LabelSet labels;
  if (!absl::ConsumePrefix(&rest, "{")) {
    return labels;
  }
  // Bounded: every iteration consumes at least one character.
  while (!rest.empty()) {
    if (absl::ConsumePrefix(&rest, "}")) {
      return labels;
    }
    size_t n = 0;
    while (n < rest.size() && isNameChar(rest[n])) {
      ++n;
    }
    const std::string name(rest.substr(0, n));
    rest.remove_prefix(n);
    if (name.empty() || !absl::ConsumePrefix(&rest, "=\"")) {
      return absl::InvalidArgumentError("bad label");
    }
    std::string value;
    bool closed = false;
    while (!rest.empty()) {
      const char c = rest.front();
      rest.remove_prefix(1);
      if (c == '"') {
        closed = true;
        break;
      }
      if (c == '\\' && !rest.empty()) {
        const char e = rest.front();
        rest.remove_prefix(1);
        value.push_back(e == 'n' ? '\n' : e);
      } else {
        value.push_back(c);
      }
    }
    if (!closed) {
      return absl::InvalidArgumentError("unterminated label value");
    }
    if (!labels.emplace(name, value).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate label ", name));
    }
    absl::ConsumePrefix(&rest, ",");
  }
  return absl::InvalidArgumentError("unterminated label set");
}

}  // namespace

absl::StatusOr<HttpResponse> httpRequest(const std::string& host, uint16_t port,
                                         const std::string& method, const std::string& path,
                                         const std::string& headers) {
  const bool v6 = absl::StrContains(host, ':');
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return errnoError("socket");
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (v6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    ::inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr);
    length = sizeof(*sin6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &sin->sin_addr);
    length = sizeof(*sin);
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&storage), length) != 0) {
    const auto status = errnoError("connect");
    ::close(fd);
    return status;
  }
  const std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.0\r\nHost: ", v6 ? "[" + host + "]" : host, ":",
                   port, "\r\nConnection: close\r\n", headers, "\r\n");
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    const auto status = errnoError("send");
    ::close(fd);
    return status;
  }
  std::string response;
  char buf[16384];
  // Bounded by the receive timeout and a 64 MiB cap.
  while (response.size() < (64u << 20)) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const auto status = errnoError("recv");
      ::close(fd);
      return status;
    }
    if (n == 0) {
      break;
    }
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    return absl::DataLossError("no HTTP header end");
  }
  HttpResponse out;
  out.status_line = response.substr(0, response.find("\r\n"));
  const std::vector<absl::string_view> words = absl::StrSplit(out.status_line, ' ');
  if (!absl::StartsWith(out.status_line, "HTTP/1.") || words.size() < 2 ||
      !absl::SimpleAtoi(words[1], &out.status)) {
    return absl::DataLossError(absl::StrCat("HTTP: ", out.status_line));
  }
  out.headers = response.substr(0, header_end + 2);
  out.body = response.substr(header_end + 4);
  return out;
}

absl::StatusOr<std::string> httpGet(const std::string& host, uint16_t port,
                                    const std::string& path, const std::string& headers) {
  auto response = httpRequest(host, port, "GET", path, headers);
  if (!response.ok()) {
    return response.status();
  }
  if (response->status != 200) {
    return absl::UnavailableError(absl::StrCat("HTTP: ", response->status_line));
  }
  return std::move(response->body);
}

std::optional<double> Exposition::value(const std::string& name, const LabelSet& labels) const {
  for (const auto& s : samples) {
    if (s.name == name && s.labels == labels) {
      return s.value;
    }
  }
  return std::nullopt;
}

std::vector<MetricSample> Exposition::series(const std::string& name) const {
  std::vector<MetricSample> out;
  for (const auto& s : samples) {
    if (s.name == name) {
      out.push_back(s);
    }
  }
  return out;
}

std::string Exposition::familyOf(const std::string& sample_name) const {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    if (absl::EndsWith(sample_name, suffix)) {
      const std::string base = sample_name.substr(0, sample_name.size() - std::strlen(suffix));
      const auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) {
        return base;
      }
    }
  }
  return sample_name;
}

absl::StatusOr<Exposition> parseExposition(absl::string_view text) {
  Exposition out;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (line.empty()) {
      continue;
    }
    if (absl::ConsumePrefix(&line, "# ")) {
      const bool is_type = absl::ConsumePrefix(&line, "TYPE ");
      const bool is_help = !is_type && absl::ConsumePrefix(&line, "HELP ");
      if (!is_type && !is_help) {
        continue;  // a comment
      }
      const size_t space = line.find(' ');
      if (space == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": bad # line"));
      }
      const std::string family(line.substr(0, space));
      (is_type ? out.types : out.help)[family] = std::string(line.substr(space + 1));
      continue;
    }
    MetricSample sample;
    size_t n = 0;
    while (n < line.size() && isNameChar(line[n])) {
      ++n;
    }
    sample.name = std::string(line.substr(0, n));
    absl::string_view rest = line.substr(n);
    auto labels = parseLabels(rest);
    if (sample.name.empty() || !labels.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": bad sample: ", line));
    }
    sample.labels = *std::move(labels);
    // The value, then an optional timestamp.
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::StripAsciiWhitespace(rest), ' ', absl::SkipEmpty());
    if (fields.empty() || fields.size() > 2) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": bad value"));
    }
    auto value = parseValue(fields[0]);
    if (!value.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_number, ": ", value.status().message()));
    }
    sample.value = *value;
    out.samples.push_back(std::move(sample));
  }
  return out;
}

std::string seriesKey(const std::string& name, const LabelSet& labels) {
  std::string out = name + "{";
  const char* sep = "";
  for (const auto& [k, v] : labels) {
    absl::StrAppend(&out, sep, k, "=\"", v, "\"");
    sep = ",";
  }
  return out + "}";
}

}  // namespace shadowrelay::testing
