// SPDX-License-Identifier: Apache-2.0
#include "relay/ss_uri.h"

#include <cctype>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace shadowrelay::relay {

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
  std::string userinfo = absl::WebSafeBase64Escape(absl::StrCat(method, ":", password));
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

}  // namespace shadowrelay::relay
