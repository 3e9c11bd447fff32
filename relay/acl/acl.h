// SPDX-License-Identifier: Apache-2.0
#pragma once
// Access control lists in shadowsocks-libev's format (`--acl FILE`), as shadowsocks-libev and
// shadowsocks-rust read them:
//
//   [proxy_all] / [accept_all]     targets no rule names go through the server (the default)
//   [bypass_all] / [reject_all]    targets no rule names are connected directly
//   [bypass_list] / [black_list]   the rules below: connect directly (the section at the top)
//   [proxy_list] / [white_list]    the rules below: through the server
//   [outbound_block_list]          the rules below: a server refuses these targets
//
// A rule is an IPv4 or IPv6 address, an address/prefix, or else a regular expression searched
// (unanchored) in a target's host name, e.g. `(^|\.)example\.com$`. '#' starts a comment line.
// Regular expressions are RE2's (libev uses PCRE: backreferences and lookaround are refused
// with the line's number). docs/ACL.md says what was verified against libev and where we differ.

#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "crypto/address.h"
#include "relay/net/ip_networks.h"

#include "re2/set.h"

namespace shadowrelay::relay {

class Acl {
 public:
  enum class Route { Proxy, Bypass };

  /// Reads and parses `path`. INVALID_ARGUMENT naming the file and line of a bad rule.
  static absl::StatusOr<std::shared_ptr<const Acl>> load(const std::string& path);
  /// Parses `text`; `origin` names it in errors.
  static absl::StatusOr<std::shared_ptr<const Acl>> parse(absl::string_view text,
                                                          absl::string_view origin);
  ~Acl();

  /// local/tunnel: where a connection to `target` goes. A name is matched by the name rules
  /// only (it is not resolved here: no lookup leaks a name the server should resolve); an
  /// address by the address rules. The bypass list wins over the proxy list; neither: the
  /// file's default ([proxy_all] unless [bypass_all]).
  Route route(const crypto::SocksAddress& target) const;
  /// server: whether [outbound_block_list] names the target: by name before it is resolved,
  /// by address after.
  bool blocksName(absl::string_view host) const;
  bool blocksAddress(const sockaddr* addr) const;
  bool hasOutboundBlockList() const { return !block_.empty(); }

  /// Rules read, for the log.
  size_t ruleCount() const { return bypass_.size() + proxy_.size() + block_.size(); }
  bool bypassByDefault() const { return bypass_by_default_; }

 private:
  /// The rules of one section.
  struct Rules {
    std::vector<std::string> networks;  // as written; compiled into `addresses`
    IpNetworks addresses;
    size_t name_count = 0;
    std::unique_ptr<re2::RE2::Set> names;  // every name rule of the section, one automaton
    size_t size() const { return networks.size() + name_count; }
    bool empty() const { return size() == 0; }
    bool matchesName(absl::string_view host) const;
  };
  Acl() = default;

  bool bypass_by_default_ = false;
  Rules bypass_;
  Rules proxy_;
  Rules block_;
};

/// The ACL in force, replaced whole on SIGHUP while the workers read it: each reader takes the
/// current one for the decision it makes (one short lock and a reference count per decision).
class AclSlot {
 public:
  explicit AclSlot(std::shared_ptr<const Acl> acl) : acl_(std::move(acl)) {}
  std::shared_ptr<const Acl> get() const {
    absl::MutexLock lock(&mu_);
    return acl_;
  }
  void set(std::shared_ptr<const Acl> acl) {
    absl::MutexLock lock(&mu_);
    acl_ = std::move(acl);
  }

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const Acl> acl_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shadowrelay::relay
