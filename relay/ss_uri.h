// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace shadowrelay::relay {

/// SIP002 URI (PROTOCOL.md §3.1): ss://base64url(method:password)@host:port#tag, base64url
/// without padding; IPv6 hosts in brackets; the tag percent-encoded. A SIP003 `plugin`
/// ("name;opts") adds "/?plugin=" and the value percent-encoded.
std::string makeSsUri(absl::string_view method, absl::string_view password, absl::string_view host,
                      uint16_t port, absl::string_view tag, absl::string_view plugin = "");

/// Percent-encodes everything but RFC 3986 unreserved characters.
std::string percentEncode(absl::string_view text);

}  // namespace shadowrelay::relay
