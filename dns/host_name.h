// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace shadowrelay::dns {

inline constexpr size_t kMaxHostNameLength = 253;  // Without the optional trailing dot.
inline constexpr size_t kMaxLabelLength = 63;

/// True for a name we are willing to send to a DNS server: at most 253 characters (plus one
/// optional trailing dot), dot-separated labels of 1..63 letters, digits, '-' or '_'.
/// Empty names, empty labels ("a..b", ".a") and any other byte are rejected.
bool isValidHostName(absl::string_view name);

/// The cache and coalescing key: ASCII lower case, without the trailing dot.
/// Precondition: isValidHostName(name).
std::string normalizeHostName(absl::string_view name);

}  // namespace shadowrelay::dns
