// SPDX-License-Identifier: Apache-2.0
#include "dns/host_name.h"

#include "absl/strings/ascii.h"

namespace shadowrelay::dns {
namespace {

bool isLabelChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}

}  // namespace

bool isValidHostName(absl::string_view name) {
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  if (name.empty() || name.size() > kMaxHostNameLength) {
    return false;
  }
  size_t label_length = 0;
  for (const char c : name) {
    if (c == '.') {
      if (label_length == 0) {
        return false;
      }
      label_length = 0;
      continue;
    }
    if (!isLabelChar(c) || ++label_length > kMaxLabelLength) {
      return false;
    }
  }
  return label_length != 0;
}

std::string normalizeHostName(absl::string_view name) {
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  return absl::AsciiStrToLower(name);
}

}  // namespace shadowrelay::dns
