// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::relay {

/// SIP002 URI (PROTOCOL.md §3.1) naming a server, `tag` its display name (percent-encoded; none
/// when empty). AEAD-2017 methods: ss://base64url(method:password)@host:port#tag, base64url
/// without padding. 2022 methods (SIP002 forbids base64 for them): ss://pct(method):pct(password)
/// @host:port#tag, each part percent-encoded, so the password "iPSK:uPSK" of a user behind an
/// identity key (SIP023) reads "iPSK%3AuPSK". IPv6 hosts in brackets. A SIP003 `plugin`
/// ("name;opts") adds "/?plugin=" and the value percent-encoded.
/// The SIP002 `plugin` value for clients of a server running `plugin` with `options`:
/// "name;opts", with the client's program (obfs-server -> obfs-local) and without the options
/// only a server reads (v2ray-plugin's server, cert, key; simple-obfs's failover).
std::string clientPluginParameter(absl::string_view plugin, absl::string_view options);

std::string makeSsUri(absl::string_view method, absl::string_view password, absl::string_view host,
                      uint16_t port, absl::string_view tag, absl::string_view plugin = "");

/// A server as an ss:// URI names it.
struct SsUri {
  std::string method;    // as written (not looked up)
  std::string password;  // decoded; "iPSK:uPSK" for a 2022 user behind an identity key
  std::string host;      // without brackets
  uint16_t port = 0;
  std::string tag;  // decoded
  std::string plugin;  // SIP003 "name;opts" from ?plugin=, decoded; empty: none
  bool operator==(const SsUri&) const = default;
};

/// Parses either SIP002 form (a userinfo with ':' is plain, percent-decoded; one without is
/// base64url or standard base64, padding optional, after percent-decoding), then "@host:port",
/// an optional "/", "?query" (`plugin` read, "name;opts" percent-decoded; other keys are
/// ignored) and "#tag". Errors name the part, never the password.
absl::StatusOr<SsUri> parseSsUri(absl::string_view uri);

/// Percent-encodes everything but RFC 3986 unreserved characters.
std::string percentEncode(absl::string_view text);

}  // namespace shadowrelay::relay
