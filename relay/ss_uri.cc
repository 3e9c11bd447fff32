// SPDX-License-Identifier: Apache-2.0
#include "relay/ss_uri.h"

#include <cctype>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "crypto/method.h"

namespace shadowrelay::relay {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// nullopt for a '%' not followed by two hex digits.
std::optional<std::string> percentDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int hi = hexValue(text[i + 1]);
    const int lo = hexValue(text[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi << 4 | lo));
    i += 2;
  }
  return out;
}

absl::Status uriError(absl::string_view part, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("ss:// URI: ", part, ": ", what));
}

bool is2022(absl::string_view method) {
  auto info = crypto::findAnyMethod(method);
  return info.ok() && (*info)->edition == crypto::Edition::Aead2022;
}

}  // namespace

std::string percentEncode(absl::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string makeSsUri(absl::string_view method, absl::string_view password, absl::string_view host,
                      uint16_t port, absl::string_view tag, absl::string_view plugin) {
  const std::string userinfo =
      is2022(method) ? absl::StrCat(percentEncode(method), ":", percentEncode(password))
                     : absl::WebSafeBase64Escape(absl::StrCat(method, ":", password));
  const bool v6 = host.find(':') != absl::string_view::npos;
  std::string uri = absl::StrCat("ss://", userinfo, "@", v6 ? "[" : "", host, v6 ? "]" : "", ":",
                                 port);
  if (!plugin.empty()) {
    absl::StrAppend(&uri, "/?plugin=", percentEncode(plugin));
  }
  if (!tag.empty()) {
    absl::StrAppend(&uri, "#", percentEncode(tag));
  }
  return uri;
}

absl::StatusOr<SsUri> parseSsUri(absl::string_view uri) {
  if (!absl::ConsumePrefix(&uri, "ss://")) return uriError("scheme", "not ss://");
  SsUri out;
  if (const size_t hash = uri.find('#'); hash != absl::string_view::npos) {
    auto tag = percentDecode(uri.substr(hash + 1));
    if (!tag) return uriError("tag", "bad percent-encoding");
    out.tag = *std::move(tag);
    uri = uri.substr(0, hash);
  }
  if (const size_t query = uri.find('?'); query != absl::string_view::npos) {
    for (absl::string_view pair : absl::StrSplit(uri.substr(query + 1), '&')) {
      if (absl::ConsumePrefix(&pair, "plugin=")) {
        auto plugin = percentDecode(pair);
        if (!plugin) return uriError("plugin", "bad percent-encoding");
        out.plugin = *std::move(plugin);
      }
    }
    uri = uri.substr(0, query);
  }
  absl::ConsumeSuffix(&uri, "/");
  const size_t at = uri.rfind('@');
  if (at == absl::string_view::npos) return uriError("userinfo", "missing (method:password@)");
  const absl::string_view userinfo = uri.substr(0, at);
  absl::string_view authority = uri.substr(at + 1);

  std::string method_password;
  if (userinfo.find(':') != absl::string_view::npos) {
    // Plain: each side percent-encoded on its own; the first ':' separates them.
    const size_t colon = userinfo.find(':');
    auto method = percentDecode(userinfo.substr(0, colon));
    auto password = percentDecode(userinfo.substr(colon + 1));
    if (!method || !password) return uriError("userinfo", "bad percent-encoding");
    out.method = *std::move(method);
    out.password = *std::move(password);
  } else {
    auto unescaped = percentDecode(userinfo);  // some producers write '=' as %3D
    std::string decoded;
    if (!unescaped || !(absl::WebSafeBase64Unescape(*unescaped, &decoded) ||
                        absl::Base64Unescape(*unescaped, &decoded))) {
      return uriError("userinfo", "neither method:password nor its base64");
    }
    const size_t colon = decoded.find(':');
    if (colon == std::string::npos) return uriError("userinfo", "no ':' after the method");
    out.method = decoded.substr(0, colon);
    out.password = decoded.substr(colon + 1);
  }
  if (out.method.empty()) return uriError("method", "empty");
  if (out.password.empty()) return uriError("password", "empty");

  absl::string_view port_text;
  if (absl::ConsumePrefix(&authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return uriError("host", "unclosed [");
    out.host = std::string(authority.substr(0, close));
    authority = authority.substr(close + 1);
    if (!absl::ConsumePrefix(&authority, ":")) return uriError("port", "missing");
    port_text = authority;
  } else {
    const size_t colon = authority.rfind(':');
    if (colon == absl::string_view::npos) return uriError("port", "missing");
    out.host = std::string(authority.substr(0, colon));
    port_text = authority.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      return uriError("host", "an IPv6 address needs brackets");
    }
  }
  if (out.host.empty()) return uriError("host", "empty");
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535) {
    return uriError("port", "not 1..65535");
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

namespace {

// SIP003 hosts pass the server's program name in the URI; simple-obfs names its two sides apart.
constexpr std::pair<absl::string_view, absl::string_view> kClientPrograms[] = {
    {"obfs-server", "obfs-local"},
};
// Options only the server side reads (v2ray-plugin: server mode and its certificate; simple-obfs:
// where probes are forwarded).
constexpr absl::string_view kServerOnlyOptions[] = {"server", "cert", "key", "failover"};

}  // namespace

std::string clientPluginParameter(absl::string_view plugin, absl::string_view options) {
  std::string program(plugin.substr(plugin.rfind('/') + 1));  // a path: its file name
  for (const auto& [server, client] : kClientPrograms) {
    if (program == server) program = std::string(client);
  }
  std::vector<absl::string_view> kept;
  // Unescaped ';' separate the options (a '\' escapes the next character).
  size_t start = 0;
  for (size_t i = 0; i <= options.size(); ++i) {
    if (i < options.size() && options[i] == '\\') {
      ++i;
      continue;
    }
    if (i < options.size() && options[i] != ';') continue;
    const absl::string_view option = options.substr(start, i - start);
    start = i + 1;
    const absl::string_view key = option.substr(0, option.find('='));
    bool server_only = false;
    for (absl::string_view s : kServerOnlyOptions) server_only = server_only || key == s;
    if (!option.empty() && !server_only) kept.push_back(option);
  }
  return kept.empty() ? program : absl::StrCat(program, ";", absl::StrJoin(kept, ";"));
}

}  // namespace shadowrelay::relay
