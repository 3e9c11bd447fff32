// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/stats_macros.h"

#include "absl/strings/str_cat.h"

namespace shadowrelay::relay {

std::string formatSummary(std::span<const std::pair<absl::string_view, uint64_t>> items) {
  std::string out;
  absl::string_view open_group;  // the group whose "{" is open, "" if none
  for (const auto& [key, value] : items) {
    const size_t dot = key.find('.');
    const absl::string_view group = dot == absl::string_view::npos ? "" : key.substr(0, dot);
    const absl::string_view name = dot == absl::string_view::npos ? key : key.substr(dot + 1);
    if (group != open_group) {
      if (!open_group.empty()) out += '}';
      if (!out.empty()) out += ' ';
      if (!group.empty()) absl::StrAppend(&out, group, "{");
      open_group = group;
    } else if (!out.empty()) {
      out += ' ';
    }
    absl::StrAppend(&out, name, "=", value);
  }
  if (!open_group.empty()) out += '}';
  return out;
}

}  // namespace shadowrelay::relay
