// SPDX-License-Identifier: Apache-2.0
#include "relay/acl/acl.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "dns/ip_address.h"
#include "re2/re2.h"

namespace shadowrelay::relay {
namespace {

RE2::Options nameOptions() {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_case_sensitive(false);  // host names are case-insensitive
  return options;
}

/// Whether `rule` is written as an address or address/prefix (else it is a name pattern).
bool isAddressRule(absl::string_view rule) {
  return dns::IpAddress::parse(rule.substr(0, rule.find('/'))).has_value();
}

}  // namespace

Acl::~Acl() = default;

bool Acl::Rules::matchesName(absl::string_view host) const {
  return names != nullptr && names->Match(re2::StringPiece(host.data(), host.size()), nullptr);
}

absl::StatusOr<std::shared_ptr<const Acl>> Acl::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot be read"));
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

absl::StatusOr<std::shared_ptr<const Acl>> Acl::parse(absl::string_view text,
                                                      absl::string_view origin) {
  std::shared_ptr<Acl> acl(new Acl());
  Rules* section = &acl->bypass_;  // libev: the rules before any section header bypass
  const auto error = [&](size_t line, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ":", line, ": ", what));
  };
  size_t number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    if (line == "[proxy_all]" || line == "[accept_all]") {
      acl->bypass_by_default_ = false;
    } else if (line == "[bypass_all]" || line == "[reject_all]") {
      acl->bypass_by_default_ = true;
    } else if (line == "[bypass_list]" || line == "[black_list]") {
      section = &acl->bypass_;
    } else if (line == "[proxy_list]" || line == "[white_list]") {
      section = &acl->proxy_;
    } else if (line == "[outbound_block_list]") {
      section = &acl->block_;
    } else if (line.front() == '[' && line.back() == ']') {
      return error(number, absl::StrCat("unknown section ", line));
    } else if (isAddressRule(line)) {
      if (auto one = IpNetworks::parse({std::string(line)}); !one.ok()) {
        return error(number, one.status().message());
      }
      section->networks.emplace_back(line);
    } else {
      if (section->names == nullptr) {
        section->names = std::make_unique<RE2::Set>(nameOptions(), RE2::UNANCHORED);
      }
      std::string why;
      if (section->names->Add(re2::StringPiece(line.data(), line.size()), &why) < 0) {
        return error(number, absl::StrCat("not a regular expression RE2 accepts (", why, ")"));
      }
      ++section->name_count;
    }
  }
  for (Rules* rules : {&acl->bypass_, &acl->proxy_, &acl->block_}) {
    auto addresses = IpNetworks::parse(rules->networks);
    if (!addresses.ok()) return absl::InvalidArgumentError(addresses.status().message());
    rules->addresses = *std::move(addresses);
    if (rules->names != nullptr && !rules->names->Compile()) {
      return absl::ResourceExhaustedError(
          absl::StrCat(origin, ": the name rules are too large to compile"));
    }
  }
  return std::shared_ptr<const Acl>(std::move(acl));
}

Acl::Route Acl::route(const crypto::SocksAddress& target) const {
  if (target.type == crypto::SocksAddress::Type::Domain) {
    if (bypass_.matchesName(target.host)) return Route::Bypass;
    if (proxy_.matchesName(target.host)) return Route::Proxy;
  } else {
    sockaddr_storage storage{};
    const bool v4 = target.type == crypto::SocksAddress::Type::IPv4;
    const dns::IpAddress ip =
        v4 ? dns::IpAddress::v4({target.ip[0], target.ip[1], target.ip[2], target.ip[3]})
           : dns::IpAddress::v6(target.ip);
    ip.toSockaddr(0, &storage);
    const auto* addr = reinterpret_cast<const sockaddr*>(&storage);
    if (bypass_.addresses.contains(addr)) return Route::Bypass;
    if (proxy_.addresses.contains(addr)) return Route::Proxy;
  }
  return bypass_by_default_ ? Route::Bypass : Route::Proxy;
}

bool Acl::blocksName(absl::string_view host) const { return block_.matchesName(host); }

bool Acl::blocksAddress(const sockaddr* addr) const { return block_.addresses.contains(addr); }

}  // namespace shadowrelay::relay
