// SPDX-License-Identifier: Apache-2.0
#include "relay/config.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "nlohmann/json.hpp"
#include "relay/acl/acl.h"
#include "relay/base/process_identity.h"
#include "relay/config_options.h"
#include "relay/net/ip_networks.h"
#include "relay/ss_uri.h"

namespace shadowrelay::relay {
namespace {

using json = nlohmann::json;

absl::Status fieldError(absl::string_view where, absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", field, ": ", what));
}

absl::StatusOr<uint16_t> parsePort(absl::string_view text, int min = 1) {
  int port = 0;
  if (!absl::SimpleAtoi(text, &port) || port < min || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a port (", min, "..65535)"));
  }
  return static_cast<uint16_t>(port);
}

absl::StatusOr<int> parseNumber(absl::string_view text, int min, int max) {
  int v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a number in ", min, "..", max));
  }
  return v;
}

absl::StatusOr<bool> parseBool(absl::string_view text) {
  if (text == "true") return true;
  if (text == "false") return false;
  return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not true or false"));
}

constexpr std::pair<Mode, absl::string_view> kModes[] = {
    {Mode::TcpOnly, "tcp_only"}, {Mode::TcpAndUdp, "tcp_and_udp"}, {Mode::UdpOnly, "udp_only"}};

absl::StatusOr<Mode> parseMode(absl::string_view text) {
  for (const auto& [mode, name] : kModes) {
    if (text == name) return mode;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not one of tcp_only, tcp_and_udp, udp_only"));
}

absl::string_view modeName(Mode mode) {
  for (const auto& [m, name] : kModes) {
    if (m == mode) return name;
  }
  return "?";
}

// JSON values may be numbers or numeric strings (libev accepts both for ports).
absl::StatusOr<std::string> scalarText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  return absl::InvalidArgumentError("must be a string or an integer");
}

// A user's expire_after_first_use: whole seconds, or a string of them with a unit s, m, h or d
// ("30d"). Positive.
absl::StatusOr<int64_t> parseLifetime(const json& v) {
  int64_t value = 0;
  int64_t unit = 1;
  if (v.is_number_integer()) {
    value = v.get<int64_t>();
  } else if (v.is_string()) {
    std::string text = v.get<std::string>();
    if (!text.empty() && !absl::ascii_isdigit(static_cast<unsigned char>(text.back()))) {
      const char suffix = text.back();
      unit = suffix == 's' ? 1 : suffix == 'm' ? 60 : suffix == 'h' ? 3600 : suffix == 'd' ? 86400 : 0;
      text.pop_back();
    }
    if (unit == 0 || !absl::SimpleAtoi(text, &value)) {
      return absl::InvalidArgumentError("must be seconds, or a number with s, m, h or d (\"30d\")");
    }
  } else {
    return absl::InvalidArgumentError("must be seconds, or a string such as \"30d\"");
  }
  if (value <= 0 || value > 100LL * 365 * 86400 / unit) {
    return absl::InvalidArgumentError("must be positive, and at most 100 years");
  }
  return value * unit;
}

// "users": [{"name": ..., "password" | "key": ..., "method": ..., "port": ...}]. Errors name the
// entry, e.g. "users[2].port: ...".
absl::Status parseUsers(const json& v, std::vector<ConfigUser>* users) {
  if (!v.is_array()) {
    return absl::InvalidArgumentError("must be a list of {name, password, method}");
  }
  users->clear();
  for (size_t i = 0; i < v.size(); ++i) {
    const json& entry = v[i];
    const std::string where = absl::StrCat("users[", i, "]");
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not an object"));
    }
    ConfigUser user;
    for (auto it = entry.begin(); it != entry.end(); ++it) {
      const std::string& key = it.key();
      std::string* text = key == "name"       ? &user.name
                          : key == "password" ? &user.password
                          : key == "key"      ? &user.key
                          : key == "method"   ? &user.method
                          : key == "plugin"   ? &user.plugin
                          : key == "plugin_opts" ? &user.plugin_opts
                          : key == "expire_time" ? &user.expire_time
                          : key == "data_quota_period" ? &user.data_quota_period
                                              : nullptr;
      if (text != nullptr) {
        if (!it.value().is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": must be a string"));
        }
        *text = it.value().get<std::string>();
      } else if (key == "max_devices") {
        if (!it.value().is_number_unsigned() ||
            it.value().get<uint64_t>() > std::numeric_limits<uint32_t>::max()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ".max_devices: must be a whole number 0..4294967295"));
        }
        user.max_devices = static_cast<uint32_t>(it.value().get<uint64_t>());
      } else if (key == "port") {
        auto t = scalarText(it.value());
        auto p = t.ok() ? parsePort(*t) : absl::StatusOr<uint16_t>(t.status());
        if (!p.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ".port: ", p.status().message()));
        }
        user.port = *p;
      } else if (key == "data_quota_bytes") {
        if (!it.value().is_number_unsigned()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ".data_quota_bytes: must be a non-negative integer"));
        }
        user.data_quota_bytes = it.value().get<uint64_t>();
      } else if (key == "expire_after_first_use") {
        auto seconds = parseLifetime(it.value());
        if (!seconds.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ".expire_after_first_use: ", seconds.status().message()));
        }
        user.expire_after_first_use = *seconds;
      } else if (key == "bytes_per_second") {
        if (!it.value().is_number_unsigned()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ".bytes_per_second: must be a non-negative integer"));
        }
        user.bytes_per_second = it.value().get<uint64_t>();
      } else {
        return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": unknown key"));
      }
    }
    if (user.name.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ".name: missing"));
    absl::Time expire;
    std::string time_error;
    if (!user.expire_time.empty() &&
        !absl::ParseTime(absl::RFC3339_full, user.expire_time, &expire, &time_error)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".expire_time: not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z): ", time_error));
    }
    if (!user.data_quota_period.empty() && user.data_quota_period != "none" &&
        user.data_quota_period != "daily" && user.data_quota_period != "weekly" &&
        user.data_quota_period != "monthly") {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".data_quota_period: must be none, daily, weekly or monthly"));
    }
    if (user.password.empty() == user.key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".password: give either password or key"));
    }
    users->push_back(std::move(user));
  }
  return absl::OkStatus();
}

// --- Several servers for local and tunnel (relay/upstream) ---
// "servers": [{"server" | "address", "server_port" | "port", "password" | "key", "method",
// "name" | "remarks", "disabled"}], shadowsocks-rust's keys. Errors name the entry, e.g.
// "servers[1].port: ...". Disabled entries are left out.
absl::Status parseServers(const json& v, std::vector<ServerEntry>* servers) {
  if (!v.is_array()) {
    return absl::InvalidArgumentError("must be a list of {server, server_port, password, method}");
  }
  servers->clear();
  for (size_t i = 0; i < v.size(); ++i) {
    const json& entry = v[i];
    const std::string where = absl::StrCat("servers[", i, "]");
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": not an object"));
    }
    ServerEntry server;
    bool disabled = false;
    for (auto it = entry.begin(); it != entry.end(); ++it) {
      const std::string& key = it.key();
      std::string* text = key == "server" || key == "address" ? &server.host
                          : key == "password"                 ? &server.password
                          : key == "key"                      ? &server.key
                          : key == "method"                   ? &server.method
                          : key == "name" || key == "remarks" ? &server.name
                                                              : nullptr;
      if (text != nullptr) {
        if (!it.value().is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": must be a string"));
        }
        *text = it.value().get<std::string>();
      } else if (key == "server_port" || key == "port") {
        auto t = scalarText(it.value());
        auto p = t.ok() ? parsePort(*t) : absl::StatusOr<uint16_t>(t.status());
        if (!p.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ".", key, ": ", p.status().message()));
        }
        server.port = *p;
      } else if (key == "disabled") {
        if (!it.value().is_boolean()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ".disabled: must be true or false"));
        }
        disabled = it.value().get<bool>();
      } else if (key == "plugin" || key == "plugin_opts") {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".", key, ": not per server (one top-level plugin, with one server)"));
      } else {
        return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": unknown key"));
      }
    }
    if (server.host.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".server: missing"));
    }
    if (server.port == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".server_port: missing"));
    }
    if (!server.password.empty() && !server.key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".password: give either password or key, not both"));
    }
    if (!disabled) servers->push_back(std::move(server));
  }
  return absl::OkStatus();
}

bool isBool(const OptionSpec& o) { return std::holds_alternative<bool Config::*>(o.field); }

template <typename Field, typename T>
absl::Status assign(Field& field, absl::StatusOr<T> value) {
  if (!value.ok()) return value.status();
  field = *std::move(value);
  return absl::OkStatus();
}

// A flag's text into a field, one overload per OptionField type.
absl::Status setText(const OptionSpec&, std::string& field, absl::string_view text) {
  field = std::string(text);
  return absl::OkStatus();
}
// Listen ports may be 0 (any free port: the server logs the one it got); a server to reach may
// not (validateConfig).
absl::Status setText(const OptionSpec&, uint16_t& field, absl::string_view text) {
  return assign(field, parsePort(text, /*min=*/0));
}
absl::Status setText(const OptionSpec& o, int& field, absl::string_view text) {
  return assign(field, parseNumber(text, o.min, o.max));
}
absl::Status setText(const OptionSpec&, bool& field, absl::string_view text) {
  return assign(field, parseBool(text));
}
absl::Status setText(const OptionSpec&, Mode& field, absl::string_view text) {
  return assign(field, parseMode(text));
}
absl::Status setText(const OptionSpec&, std::optional<Endpoint>& field, absl::string_view text) {
  return assign(field, Endpoint::parse(text));
}
// Appends: a repeated flag adds to the list (applyFlag clears the file's list first).
absl::Status setText(const OptionSpec&, std::vector<std::string>& field, absl::string_view text) {
  field.emplace_back(text);
  return absl::OkStatus();
}
absl::Status setText(const OptionSpec& o, std::vector<ConfigUser>&, absl::string_view) {
  return absl::InvalidArgumentError(absl::StrCat("only in the config file (\"", o.name, "\")"));
}
absl::Status setText(const OptionSpec& o, std::vector<ServerEntry>&, absl::string_view) {
  return absl::InvalidArgumentError(absl::StrCat("only in the config file (\"", o.name, "\")"));
}

// A JSON value into a field: numbers may be integers or numeric strings (libev accepts both for
// ports); the other text forms must be strings.
template <typename T>
absl::Status setJson(const OptionSpec& o, T& field, const json& v) {
  if constexpr (std::is_same_v<T, uint16_t> || std::is_same_v<T, int>) {
    auto text = scalarText(v);
    if (!text.ok()) return text.status();
    return setText(o, field, *text);
  } else {
    if (!v.is_string()) return absl::InvalidArgumentError("must be a string");
    return setText(o, field, v.get<std::string>());
  }
}
absl::Status setJson(const OptionSpec&, bool& field, const json& v) {
  if (!v.is_boolean()) return absl::InvalidArgumentError("must be true or false");
  field = v.get<bool>();
  return absl::OkStatus();
}
// A string or a non-empty list of strings; replaces the list.
absl::Status setJson(const OptionSpec&, std::vector<std::string>& field, const json& v) {
  field.clear();
  if (v.is_string()) {
    field.push_back(v.get<std::string>());
    return absl::OkStatus();
  }
  if (!v.is_array() || v.empty()) {
    return absl::InvalidArgumentError("must be a string or a non-empty list of strings");
  }
  for (const json& entry : v) {
    if (!entry.is_string()) return absl::InvalidArgumentError("list entries must be strings");
    field.push_back(entry.get<std::string>());
  }
  return absl::OkStatus();
}
absl::Status setJson(const OptionSpec&, std::vector<ConfigUser>& field, const json& v) {
  return parseUsers(v, &field);
}
absl::Status setJson(const OptionSpec&, std::vector<ServerEntry>& field, const json& v) {
  return parseServers(v, &field);
}

void noteSet(const OptionSpec& o, OptionSource from, Config& c) {
  if (o.given != nullptr) c.*o.given = true;
  c.option_sources[o.name] = from;
}

absl::Status applyFlag(const OptionSpec& o, absl::string_view text, Config& c) {
  if (auto* list = std::get_if<std::vector<std::string> Config::*>(&o.field);
      list != nullptr && optionSource(c, o.name) != OptionSource::Flag) {
    (c.**list).clear();  // the flags' list replaces the file's
  }
  absl::Status s = std::visit([&](auto member) { return setText(o, c.*member, text); }, o.field);
  if (s.ok()) noteSet(o, OptionSource::Flag, c);
  return s;
}

absl::Status applyJson(const OptionSpec& o, const json& v, Config& c) {
  absl::Status s = std::visit([&](auto member) { return setJson(o, c.*member, v); }, o.field);
  if (s.ok()) noteSet(o, OptionSource::File, c);
  return s;
}

const OptionSpec* findSetting(absl::string_view key) {
  for (const OptionSpec& o : optionTable()) {
    if (o.kind == OptionKind::Setting && key == o.name) return &o;
  }
  return nullptr;
}

// Python shadowsocks 2.x's config keys that are not ours (README: "Python shadowsocks config
// files"), turned into ours before the file is read: renamed, folded into ours, dropped with a
// warning (c.warnings) when they only concern Python itself, or refused with the reason.
// port_password is read by portPasswordUsers() once the rest of the file is in.
absl::Status translatePythonKeys(const std::string& path, json& doc, Config& c) {
  const auto warn = [&](absl::string_view key, absl::string_view why) {
    c.warnings.push_back(absl::StrCat(path, ": ", key, ": ", why));
  };
  const auto rename = [&](const char* from, const char* to) {
    if (!doc.contains(from)) return absl::OkStatus();
    if (doc.contains(to)) return fieldError(path, from, absl::StrCat("give either it or ", to));
    doc[to] = doc[from];
    doc.erase(from);
    return absl::OkStatus();
  };
  for (const auto& [from, to] : {std::pair{"pid-file", "pid_file"},
                                 std::pair{"prefer_ipv6", "ipv6_first"},
                                 std::pair{"dns_server", "nameserver"}}) {
    if (absl::Status s = rename(from, to); !s.ok()) return s;
  }
  // dns_server is a list in Python; nameserver a comma-separated string.
  if (doc.contains("nameserver") && doc["nameserver"].is_array()) {
    std::vector<std::string> servers;
    for (const json& server : doc["nameserver"]) {
      if (!server.is_string()) return fieldError(path, "dns_server", "must be a list of strings");
      servers.push_back(server.get<std::string>());
    }
    doc["nameserver"] = absl::StrJoin(servers, ",");
  }
  // Python's sslocal tunnel: tunnel_remote(_port) is our -L; tunnel_port its listening port.
  if (doc.contains("tunnel_remote") || doc.contains("tunnel_remote_port")) {
    if (doc.contains("tunnel_address")) {
      return fieldError(path, "tunnel_remote", "give either it or tunnel_address");
    }
    const json host = doc.value("tunnel_remote", json("8.8.8.8"));
    const json port = doc.value("tunnel_remote_port", json(53));
    auto port_text = scalarText(port);
    if (!host.is_string() || !port_text.ok()) {
      return fieldError(path, "tunnel_remote", "a host name or address and a port number");
    }
    const std::string h = host.get<std::string>();
    if (c.role == Role::Tunnel) {
      doc["tunnel_address"] = absl::StrCat(
          h.find(':') != std::string::npos ? "[" + h + "]" : h, ":", *port_text);
    } else {
      warn("tunnel_remote", "ignored: the tunnel is `shadowrelay tunnel`");
    }
    doc.erase("tunnel_remote");
    doc.erase("tunnel_remote_port");
  }
  if (doc.contains("tunnel_port")) {
    if (c.role == Role::Tunnel && !doc.contains("local_port")) {
      doc["local_port"] = doc["tunnel_port"];
    } else if (c.role != Role::Tunnel) {
      warn("tunnel_port", "ignored: the tunnel is `shadowrelay tunnel`");
    }
    doc.erase("tunnel_port");
  }
  for (const char* key : {"log-file", "libopenssl", "libmbedtls", "libsodium", "crypto_path"}) {
    if (!doc.contains(key)) continue;
    warn(key, absl::StartsWith(key, "log")
                  ? "ignored: logs go to stderr (the journal under systemd, the container "
                    "runtime's log)"
                  : "ignored: the crypto libraries are linked in (`shadowrelay ciphers`)");
    doc.erase(key);
  }
  // ShadowsocksR: its plain protocol and obfs are Shadowsocks; anything else is a protocol
  // of its own that no Shadowsocks client speaks.
  for (const auto& [key, plain] : {std::pair{"protocol", "origin"}, std::pair{"obfs", "plain"}}) {
    if (!doc.contains(key)) continue;
    if (doc[key] != json(plain)) {
      return fieldError(path, key,
                        absl::StrCat("ShadowsocksR's ", doc[key].dump(), " is not Shadowsocks and "
                                     "is not offered; only \"", plain,
                                     "\" (for obfuscation, a SIP003 plugin: --plugin)"));
    }
    doc.erase(key);
  }
  for (const char* key : {"protocol_param", "obfs_param", "additional_ports_only",
                          "connect_verbose_info", "udp_cache", "dns_ipv6", "redirect"}) {
    if (!doc.contains(key)) continue;
    warn(key, "ignored: a ShadowsocksR setting with no meaning here");
    doc.erase(key);
  }
  for (const char* key : {"additional_ports", "forbidden_port", "speed_limit_per_con",
                          "speed_limit_per_user"}) {
    if (!doc.contains(key)) continue;
    const json& v = doc[key];
    const bool unset = v.is_null() || v == json("") || v == json(0) ||
                       (v.is_object() && v.empty()) || (v.is_array() && v.empty());
    if (!unset) {
      return fieldError(path, key,
                        "a ShadowsocksR setting that is not offered (users on ports of their own: "
                        "\"users\" or port_password)");
    }
    doc.erase(key);
  }
  if (doc.contains("manager_address")) {
    return fieldError(path, "manager_address",
                      "ss-manager's UDP API is not offered: users are managed through the gRPC "
                      "control API (--control-listen)");
  }
  return absl::OkStatus();
}

// Python's multi-port map {"8381": "pw1", "8382": "pw2"}: each entry a user on its own port
// (named "port-8381"), with the file's method. As in Python, server_port and password are then
// not served: a warning says so when the file has them.
absl::Status portPasswordUsers(const std::string& path, const json& map, Config& c) {
  if (!map.is_object()) {
    return fieldError(path, "port_password", "must be an object {\"port\": \"password\"}");
  }
  for (auto it = map.begin(); it != map.end(); ++it) {
    const std::string where = absl::StrCat("port_password.\"", it.key(), "\"");
    auto port = parsePort(it.key());
    if (!port.ok()) return fieldError(path, where, port.status().message());
    if (!it.value().is_string() || it.value().get<std::string>().empty()) {
      return fieldError(path, where, "the password must be a non-empty string");
    }
    ConfigUser user;
    user.name = absl::StrCat("port-", *port);
    user.password = it.value().get<std::string>();
    user.port = *port;
    c.users.push_back(std::move(user));
  }
  return absl::OkStatus();
}

absl::Status applyJsonFile(const std::string& path, Config& c) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": cannot be read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": not a JSON object (syntax error)"));
  }
  if (absl::Status s = translatePythonKeys(path, doc, c); !s.ok()) return s;
  std::optional<json> port_password;
  if (doc.contains("port_password")) {
    if (c.role != Role::Server) return fieldError(path, "port_password", "for the server only");
    port_password = doc["port_password"];
    doc.erase("port_password");
    for (const char* served : {"server_port", "password"}) {
      if (!doc.contains(served)) continue;
      c.warnings.push_back(absl::StrCat(path, ": ", served,
                                        ": not served with port_password (as in Python)"));
      doc.erase(served);
    }
  }
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const OptionSpec* option = findSetting(it.key());
    if (option == nullptr) return fieldError(path, it.key(), "unknown key");
    if (absl::Status s = applyJson(*option, it.value(), c); !s.ok()) {
      return fieldError(path, it.key(), s.message());
    }
  }
  if (port_password) {
    if (absl::Status s = portPasswordUsers(path, *port_password, c); !s.ok()) return s;
    if (const OptionSpec* users = findSetting("users")) noteSet(*users, OptionSource::File, c);
  }
  return absl::OkStatus();
}

bool flagIs(const char* flag, absl::string_view name) { return flag != nullptr && name == flag; }

struct FlagMatch {
  const OptionSpec* option = nullptr;
  const char* implied = nullptr;  // the value the flag itself stands for (-u, --no-x)
};

FlagMatch findFlag(absl::string_view name) {
  for (const OptionSpec& o : optionTable()) {
    if (flagIs(o.short_flag, name) || flagIs(o.long_flag, name)) return {&o};
    for (const FlagAlias& alias : o.aliases) {
      if (flagIs(alias.flag, name)) return {&o, alias.value};
    }
  }
  if (absl::StartsWith(name, "--no-")) {
    const FlagMatch positive = findFlag(absl::StrCat("--", name.substr(5)));
    if (positive.option != nullptr && positive.implied == nullptr && isBool(*positive.option)) {
      return {positive.option, "false"};
    }
  }
  return {};
}

struct FlagUse {
  const OptionSpec* option;
  std::string name;  // as written, without "=value"
  std::string value;
};

// argv in order: "-x VALUE", "--xx VALUE" or "--xx=VALUE"; booleans as kBooleanRule says.
absl::StatusOr<std::vector<FlagUse>> readFlags(Role role, int argc, const char* const* argv) {
  std::vector<FlagUse> uses;
  for (int i = 0; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    absl::string_view name = arg;
    std::optional<absl::string_view> inline_value;
    if (const size_t eq = arg.find('='); absl::StartsWith(arg, "--") && eq != arg.npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    const FlagMatch match = findFlag(name);
    if (match.option == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown option \"", arg, "\" (see shadowrelay ", roleName(role), " --help)"));
    }
    FlagUse use{match.option, std::string(name), ""};
    if (match.implied != nullptr) {
      if (inline_value) {
        return absl::InvalidArgumentError(absl::StrCat("option ", name, " takes no value"));
      }
      use.value = match.implied;
    } else if (inline_value) {
      use.value = std::string(*inline_value);
    } else if (isBool(*match.option)) {
      const bool word = i + 1 < argc && parseBool(argv[i + 1]).ok();
      use.value = word ? argv[++i] : "true";
    } else if (i + 1 < argc) {
      use.value = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("option ", name, " needs a value"));
    }
    uses.push_back(std::move(use));
  }
  return uses;
}

// Applies the flags that name the config file (`config_file`), or all the others.
absl::Status applyFlags(absl::Span<const FlagUse> flags, bool config_file, Config& c) {
  for (const FlagUse& flag : flags) {
    if ((flag.option->kind == OptionKind::ConfigFile) != config_file) continue;
    if (absl::Status s = applyFlag(*flag.option, flag.value, c); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("option ", flag.name, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

// Config's defaults for `role`: the server listens on -s/-p and serves metrics and the control
// API unless told otherwise; local and tunnel serve neither.
Config roleDefaults(Role role) {
  Config c;
  c.role = role;
  if (role == Role::Server) {
    c.local_address = "";
    c.metrics_listen = kDefaultMetricsListen;
  } else {
    c.metrics_listen = kListenOff;
    c.control_listen = kListenOff;
  }
  return c;
}

constexpr char kNone[] = "(none)";

std::string unsetText(const OptionSpec& o) { return o.unset != nullptr ? o.unset : kNone; }

// A field as --help and the check report print it, one overload per OptionField type.
std::string fieldText(const OptionSpec& o, const std::string& v) {
  return v.empty() ? unsetText(o) : v;
}
std::string fieldText(const OptionSpec&, uint16_t v) { return absl::StrCat(v); }
std::string fieldText(const OptionSpec& o, int v) {
  return v == 0 && o.unset != nullptr ? o.unset : absl::StrCat(v);
}
std::string fieldText(const OptionSpec&, bool v) { return v ? "true" : "false"; }
std::string fieldText(const OptionSpec&, Mode v) { return std::string(modeName(v)); }
std::string fieldText(const OptionSpec& o, const std::optional<Endpoint>& v) {
  return v ? v->toString() : unsetText(o);
}
std::string fieldText(const OptionSpec& o, const std::vector<std::string>& v) {
  return v.empty() ? unsetText(o) : absl::StrJoin(v, ",");
}
// Names, methods and ports; never a user's password or key.
std::string fieldText(const OptionSpec& o, const std::vector<ConfigUser>& users) {
  if (users.empty()) return unsetText(o);
  return absl::StrJoin(users, ", ", [](std::string* out, const ConfigUser& u) {
    std::vector<std::string> notes;
    if (!u.method.empty()) notes.push_back(u.method);
    if (u.port != 0) notes.push_back(absl::StrCat("port ", u.port));
    if (!u.expire_time.empty()) notes.push_back(absl::StrCat("expire_time ", u.expire_time));
    if (u.expire_after_first_use != 0) {
      notes.push_back(absl::StrCat("expire_after_first_use ", u.expire_after_first_use, " s"));
    }
    if (u.data_quota_bytes != 0) {
      notes.push_back(absl::StrCat("data_quota_bytes ", u.data_quota_bytes,
                                   u.data_quota_period.empty() ? "" : " ", u.data_quota_period));
    }
    if (u.max_devices != 0) notes.push_back(absl::StrCat("max_devices ", u.max_devices));
    if (u.bytes_per_second != 0) notes.push_back(absl::StrCat(u.bytes_per_second, " B/s"));
    absl::StrAppend(out, u.name);
    if (!notes.empty()) absl::StrAppend(out, " (", absl::StrJoin(notes, ", "), ")");
  });
}

// Labels and methods; never a server's password or key.
std::string fieldText(const OptionSpec& o, const std::vector<ServerEntry>& servers) {
  if (servers.empty()) return unsetText(o);
  return absl::StrJoin(servers, ", ", [](std::string* out, const ServerEntry& s) {
    absl::StrAppend(out, serverLabel(s));
    if (!s.method.empty()) absl::StrAppend(out, " (", s.method, ")");
  });
}

// Secrets (string fields) as "(set)" or "(not set)".
std::string valueText(const OptionSpec& o, const Config& c) {
  if (o.secret) {
    const auto* text = std::get_if<std::string Config::*>(&o.field);
    return text != nullptr && (c.**text).empty() ? "(not set)" : "(set)";
  }
  return std::visit([&](auto member) { return fieldText(o, c.*member); }, o.field);
}

// By OptionSource.
constexpr absl::string_view kSourceNames[] = {"default", "config file", "flag"};

constexpr size_t kHelpColumn = 32;
constexpr size_t kHelpWidth = 100;

constexpr char kBooleanRule[] =
    "A boolean flag alone turns its option on (--fast-open, -6); --fast-open=false,\n"
    "--fast-open false and --no-fast-open turn it off (--no-reuse-port: one shared socket).\n";

// An option's flags as --help shows them: "-u, -U, --mode MODE"; "(config file)" if none.
std::string flagColumn(const OptionSpec& o) {
  std::vector<absl::string_view> flags;
  if (o.short_flag != nullptr) flags.push_back(o.short_flag);
  for (const FlagAlias& alias : o.aliases) {
    if (alias.flag != nullptr) flags.push_back(alias.flag);
  }
  if (o.long_flag != nullptr) flags.push_back(o.long_flag);
  if (flags.empty()) return "(config file)";
  std::string column = absl::StrJoin(flags, ", ");
  if (o.value_name != nullptr) absl::StrAppend(&column, " ", o.value_name);
  return column;
}

// Appends `text` from kHelpColumn, wrapped at kHelpWidth; `out` ends in column `column`.
void appendWrapped(std::string& out, size_t column, absl::string_view text) {
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (column > kHelpColumn && column + 1 + word.size() > kHelpWidth) {
      absl::StrAppend(&out, "\n", std::string(kHelpColumn, ' '));
      column = kHelpColumn;
    } else if (column > kHelpColumn) {
      out += ' ';
      ++column;
    }
    absl::StrAppend(&out, word);
    column += word.size();
  }
  out += '\n';
}

// One option of --help: flags, what it does, its default for the role and its JSON key.
std::string helpEntry(const OptionSpec& o, const Config& defaults) {
  std::string out = absl::StrCat("  ", flagColumn(o));
  if (out.size() >= kHelpColumn) {  // too wide: the text starts on the next line
    out += '\n';
    out.append(kHelpColumn, ' ');
  } else {
    out.resize(kHelpColumn, ' ');
  }
  const bool server_text = defaults.role == Role::Server && o.server_help != nullptr;
  std::string text = server_text ? o.server_help : o.help;
  if (o.kind == OptionKind::Setting) {
    if (std::string d = valueText(o, defaults); !o.secret && d != kNone) {
      absl::StrAppend(&text, " (default: ", d, ")");
    }
    absl::StrAppend(&text, " [", o.name, "]");
  }
  appendWrapped(out, kHelpColumn, text);
  return out;
}

// The first line of --help; the options follow it.
absl::string_view synopsis(Role role) {
  switch (role) {
    case Role::Server:
      return "usage: shadowrelay server [-s ADDR]... [-p PORT] (-k PASSWORD | --key BASE64 | "
             "--state-dir DIR)\n                          [options]\n";
    case Role::Local:
      return "usage: shadowrelay local -s SERVER -p PORT (-k PASSWORD | --key BASE64) [options]\n";
    case Role::Tunnel:
      return "usage: shadowrelay tunnel -s SERVER -p PORT (-k PASSWORD | --key BASE64) "
             "-L HOST:PORT [options]\n";
  }
  return "";
}

// "host:port" (port 0: any free port), "unix:/path" (control API) or "off".
absl::Status checkListen(const std::string& listen) {
  if (listen.empty() || listen == kListenOff || absl::StartsWith(listen, "unix:")) {
    return absl::OkStatus();
  }
  return Endpoint::parse(listen, Endpoint::Port::AnyOrZero).status();
}

}  // namespace

absl::string_view roleName(Role role) {
  switch (role) {
    case Role::Server:
      return "server";
    case Role::Local:
      return "local";
    case Role::Tunnel:
      return "tunnel";
  }
  return "?";
}

absl::StatusOr<Config> parseConfig(Role role, int argc, const char* const* argv) {
  auto flags = readFlags(role, argc, argv);
  if (!flags.ok()) return flags.status();
  Config c = roleDefaults(role);
  // The file named by -c first, then the other flags over it, in their order.
  if (absl::Status s = applyFlags(*flags, /*config_file=*/true, c); !s.ok()) return s;
  if (!c.config_file.empty()) {
    if (absl::Status s = applyJsonFile(c.config_file, c); !s.ok()) return s;
  }
  if (absl::Status s = applyFlags(*flags, /*config_file=*/false, c); !s.ok()) return s;
  return c;
}

OptionSource optionSource(const Config& c, absl::string_view name) {
  const auto it = c.option_sources.find(name);
  return it == c.option_sources.end() ? OptionSource::Default : it->second;
}

namespace {

// Shadowsocks 2022 (issue 14): TCP, UDP and UDP over TCP. The server's -k/--key is one PSK
// (with users: their identity key, SIP023); a client's may be a list iPSK:...:uPSK (identity
// headers).
absl::Status validate2022(const Config& c, const crypto::MethodInfo& method) {
  if (c.password.empty() && c.key.empty()) {
    return fieldError("config", "password",
                      absl::StrCat("missing: ", method.name, " needs -k with a base64 PSK of ",
                                   method.key_size, " bytes"));
  }
  if (!c.password.empty() && !c.key.empty()) return absl::OkStatus();  // reported below
  const bool from_key = c.password.empty();
  const std::string& text = from_key ? c.key : c.password;
  const absl::Status keys = c.role == Role::Server ? crypto::decodePsk(text, method).status()
                                                   : crypto::parsePskList(text, method).status();
  if (!keys.ok()) return fieldError("config", from_key ? "key" : "password", keys.message());
  return absl::OkStatus();
}

// The config file's 2022 users, as shadowsocks-rust reads them: they share the server port and
// take the file's 2022 AES method, whose "password" is their identity key (SIP023); each has a
// uPSK of the method's key size. (2022 users on ports of their own come from the control API.)
absl::Status validateUsers2022(const Config& c) {
  constexpr absl::string_view kChaChaServesOne =
      " has no identity headers (SIP023): a ChaCha 2022 port serves one user, the password; "
      "users need 2022-blake3-aes-128-gcm or 2022-blake3-aes-256-gcm";
  auto server_method = crypto::findAnyMethod(c.method);
  for (size_t i = 0; i < c.users.size(); ++i) {
    const ConfigUser& user = c.users[i];
    auto method = crypto::findAnyMethod(user.method.empty() ? c.method : user.method);
    if (!method.ok() || (*method)->edition != crypto::Edition::Aead2022) continue;
    const std::string at = absl::StrCat("users[", i, "]");
    if (!crypto::usesSeparateHeader(**method)) {
      return fieldError("config", at + ".method", absl::StrCat((*method)->name, kChaChaServesOne));
    }
    if (!server_method.ok() || *server_method != *method) {
      return fieldError(
          "config", at + ".method",
          absl::StrCat("2022 users share the server port and its method: set ", "\"method\": \"",
                       (*method)->name, "\" and its \"password\" (the identity key) at the top"));
    }
    if (user.port != 0 && user.port != c.server_port) {
      return fieldError("config", at + ".port",
                        "2022 users from the configuration share the server port, whose "
                        "password is their identity key (the control API gives 2022 users ports "
                        "of their own)");
    }
    const bool from_key = user.password.empty();
    auto psk = crypto::decodePsk(from_key ? user.key : user.password, **method);
    if (!psk.ok()) {
      return fieldError("config", at + (from_key ? ".key" : ".password"), psk.status().message());
    }
  }
  return absl::OkStatus();
}

// Legacy stream methods (PROTOCOL.md §4): no integrity, so only with --allow-insecure-ciphers,
// and no way to tell keys apart, so one user per port. OTA is refused outright.
absl::Status validateStreamMethods(const Config& c) {
  if (c.one_time_auth) {
    return fieldError("config", "one_time_auth",
                      "one-time auth (OTA) is deprecated and broken (its HMAC does not stop the "
                      "redirect attack) and is not supported; remove it, and use an AEAD method");
  }
  auto insecure = [](absl::string_view name) {
    auto m = crypto::findAnyMethod(name);
    return m.ok() && crypto::isStream(**m);
  };
  auto refused = [](absl::string_view field, absl::string_view name) {
    return fieldError("config", field,
                      absl::StrCat(name,
                                   " is a legacy stream method without integrity protection "
                                   "(insecure): give --allow-insecure-ciphers "
                                   "(\"allow_insecure_ciphers\": true) to accept it"));
  };
  std::map<uint16_t, std::vector<size_t>> on_port;  // shared port: 0; the -k user: SIZE_MAX
  if (c.role == Role::Server && (!c.password.empty() || !c.key.empty())) {
    on_port[0].push_back(SIZE_MAX);
  }
  for (size_t i = 0; i < c.users.size(); ++i) {
    const ConfigUser& u = c.users[i];
    on_port[u.port == c.server_port ? 0 : u.port].push_back(i);
  }
  if (insecure(c.method) && !c.allow_insecure_ciphers) return refused("method", c.method);
  for (const auto& [port, users] : on_port) {
    for (size_t i : users) {
      const std::string& name =
          i == SIZE_MAX || c.users[i].method.empty() ? c.method : c.users[i].method;
      if (!insecure(name)) continue;
      const std::string field = i == SIZE_MAX ? "method" : absl::StrCat("users[", i, "].method");
      if (!c.allow_insecure_ciphers) return refused(field, name);
      if (users.size() > 1) {
        return fieldError("config", field,
                          absl::StrCat(name, " has no authentication, so a port with it serves "
                                             "one user (no trial decryption), and port ",
                                       port == 0 ? c.server_port : port,
                                       " has several: give the user a port of its own"));
      }
    }
  }
  return absl::OkStatus();
}

// SIP003: one plugin in front of (server) or behind (client) one address, for TCP only.
absl::Status validateEtcd(const Config& c) {
  const std::vector<std::string> endpoints = etcdEndpointList(c);
  if (endpoints.empty()) {
    for (const auto& [name, value] :
         {std::pair<const char*, const std::string*>{"etcd_ca", &c.etcd_ca},
          {"etcd_cert", &c.etcd_cert},
          {"etcd_key", &c.etcd_key},
          {"etcd_user", &c.etcd_user},
          {"etcd_password_file", &c.etcd_password_file}}) {
      if (!value->empty()) return fieldError("config", name, "needs etcd_endpoints");
    }
    return absl::OkStatus();
  }
  if (c.role != Role::Server) return fieldError("config", "etcd_endpoints", "for the server only");
  bool tls = false;
  for (const std::string& url : endpoints) {
    absl::string_view rest = url;
    const bool https = absl::ConsumePrefix(&rest, "https://");
    if (!https && !absl::ConsumePrefix(&rest, "http://")) {
      return fieldError("config", "etcd_endpoints",
                        absl::StrCat("\"", url, "\": give http://host:port or https://host:port"));
    }
    if (auto endpoint = Endpoint::parse(absl::StripSuffix(rest, "/")); !endpoint.ok()) {
      return fieldError("config", "etcd_endpoints",
                        absl::StrCat("\"", url, "\": ", endpoint.status().message()));
    }
    tls = tls || https;
  }
  if (c.etcd_prefix.size() < 2 || c.etcd_prefix.front() != '/' || c.etcd_prefix.back() != '/') {
    return fieldError("config", "etcd_prefix", "must start and end with / (e.g. /shadowrelay/)");
  }
  if (c.etcd_cert.empty() != c.etcd_key.empty()) {
    return fieldError("config", c.etcd_cert.empty() ? "etcd_cert" : "etcd_key",
                      "give etcd_cert and etcd_key together");
  }
  if (!tls && (!c.etcd_ca.empty() || !c.etcd_cert.empty())) {
    return fieldError("config", c.etcd_ca.empty() ? "etcd_cert" : "etcd_ca",
                      "for https:// endpoints only");
  }
  for (const auto& [name, path] : {std::pair<const char*, const std::string*>{"etcd_ca", &c.etcd_ca},
                                   {"etcd_cert", &c.etcd_cert},
                                   {"etcd_key", &c.etcd_key}}) {
    if (!path->empty() && !std::ifstream(*path)) {
      return fieldError("config", name, absl::StrCat(*path, ": cannot be read"));
    }
  }
  if (c.etcd_user.empty() != c.etcd_password_file.empty()) {
    return fieldError("config", c.etcd_user.empty() ? "etcd_user" : "etcd_password_file",
                      "give etcd_user and etcd_password_file together");
  }
  if (!c.replica_id.empty() &&
      (c.replica_id == "_base" || c.replica_id.size() > 64 ||
       c.replica_id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789._-") != std::string::npos)) {
    return fieldError("config", "replica_id", "1..64 of [A-Za-z0-9._-], not _base");
  }
  return absl::OkStatus();
}

absl::Status validatePlugin(const Config& c) {
  if (c.plugin.empty()) {
    if (!c.plugin_opts.empty()) return fieldError("config", "plugin_opts", "needs a plugin");
    return absl::OkStatus();
  }
  if (c.mode == Mode::UdpOnly) {
    return fieldError("config", "plugin",
                      "a plugin carries TCP only; with udp_only (-U) there is nothing to carry");
  }
  if (c.role != Role::Server && !c.servers.empty()) {
    return fieldError("config", "servers",
                      "a plugin connects to one server: give it with -s (\"server\")");
  }
  if (c.server_hosts.size() + c.servers.size() > 1) {
    return fieldError("config", c.server_hosts.size() > 1 ? "server" : "servers",
                      c.role == Role::Server
                          ? "a plugin listens on one address: give one -s with --plugin"
                          : "a plugin connects to one server: give one -s with --plugin");
  }
  return absl::OkStatus();
}

// --- Several servers for local and tunnel (relay/upstream) ---
// Each "servers" entry: a known method, a secret (its own or the top-level one) that fits it;
// every server's label (name, or host:port) unique, as it names the server in the metrics.
absl::Status validateServers(const Config& c) {
  if (c.role == Role::Server) return absl::OkStatus();
  const std::vector<ServerEntry> all = clientServers(c);
  const size_t first = c.server_hosts.size();  // all[first + i] is servers[i]
  for (size_t i = first; i < all.size(); ++i) {
    const ServerEntry& server = all[i];
    const std::string at = absl::StrCat("servers[", i - first, "]");
    auto method = crypto::findAnyMethod(server.method);
    if (!method.ok()) return fieldError("config", at + ".method", method.status().message());
    if (server.password.empty() && server.key.empty()) {
      return fieldError("config", at + ".password",
                        "missing (give \"password\" or \"key\" in the entry or at the top)");
    }
    const bool from_key = server.password.empty();
    const std::string& secret = from_key ? server.key : server.password;
    const absl::Status fits = (*method)->edition == crypto::Edition::Aead2022
                                  ? crypto::parsePskList(secret, **method).status()
                                  : crypto::masterKeyFor(**method, server.password, server.key)
                                        .status();
    if (!fits.ok()) return fieldError("config", at + (from_key ? ".key" : ".password"), fits.message());
  }
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (serverLabel(all[i]) == serverLabel(all[j])) {
        return fieldError("config", i < first ? "server" : absl::StrCat("servers[", i - first, "]"),
                          absl::StrCat("\"", serverLabel(all[i]),
                                       "\" is given twice (give each a different \"name\")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<ServerEntry> clientServers(const Config& c) {
  std::vector<ServerEntry> out;
  for (const std::string& host : c.server_hosts) {
    out.push_back({.host = host, .port = c.server_port, .password = c.password, .key = c.key,
                   .method = c.method, .name = ""});
  }
  for (ServerEntry server : c.servers) {
    if (server.method.empty()) server.method = c.method;
    if (server.password.empty() && server.key.empty()) {
      server.password = c.password;
      server.key = c.key;
    }
    out.push_back(std::move(server));
  }
  return out;
}

std::string serverLabel(const ServerEntry& server) {
  return server.name.empty() ? Endpoint{server.host, server.port}.toString() : server.name;
}

absl::Status applyServerUrl(Config& c) {
  if (c.server_url.empty()) return absl::OkStatus();
  for (const char* given : {"server", "server_port", "method", "password", "key"}) {
    if (optionSource(c, given) != OptionSource::Default) {
      return fieldError("config", "server_url",
                        absl::StrCat("gives the server, its port, the method and the ",
                                     "password: do not also give ", given));
    }
  }
  auto uri = parseSsUri(c.server_url);
  if (!uri.ok()) return fieldError("config", "server_url", uri.status().message());
  c.server_hosts = {uri->host};
  c.server_port = uri->port;
  c.method = uri->method;
  c.method_given = true;
  c.password = uri->password;
  if (!uri->plugin.empty()) {
    if (!c.plugin.empty()) {
      return fieldError("config", "server_url", "carries a plugin: do not also give plugin");
    }
    const size_t semicolon = uri->plugin.find(';');
    c.plugin = uri->plugin.substr(0, semicolon);
    c.plugin_opts = semicolon == std::string::npos ? "" : uri->plugin.substr(semicolon + 1);
  }
  return absl::OkStatus();
}

std::vector<std::string> etcdEndpointList(const Config& c) {
  std::vector<std::string> out;
  for (const std::string& entry : c.etcd_endpoints) {
    for (absl::string_view url : absl::StrSplit(entry, ',', absl::SkipWhitespace())) {
      out.emplace_back(absl::StripAsciiWhitespace(url));
    }
  }
  return out;
}

absl::Status validateConfig(const Config& c) {
  auto method = crypto::findAnyMethod(c.method);
  if (!method.ok()) {
    return fieldError("config", "method", method.status().message());
  }
  if (c.role != Role::Server && !c.users.empty()) {
    return fieldError("config", "users", "for the server only");
  }
  for (size_t i = 0; i < c.users.size(); ++i) {
    if (c.users[i].method.empty()) continue;
    if (auto m = crypto::findAnyMethod(c.users[i].method); !m.ok()) {
      return fieldError("config", absl::StrCat("users[", i, "].method"), m.status().message());
    }
  }
  // A client's top-level secret may serve only "servers" entries (checked there).
  const bool top_server = c.role == Role::Server || !c.server_hosts.empty() || c.servers.empty();
  if ((*method)->edition == crypto::Edition::Aead2022 && top_server) {
    if (absl::Status s = validate2022(c, **method); !s.ok()) return s;
  }
  if (absl::Status s = validateUsers2022(c); !s.ok()) return s;
  if (absl::Status s = validateStreamMethods(c); !s.ok()) return s;
  if (absl::Status s = checkListen(c.control_listen); !s.ok()) {
    return fieldError("config", "control_listen", s.message());
  }
  if (absl::Status s = checkListen(c.metrics_listen); !s.ok()) {
    return fieldError("config", "metrics_listen", s.message());
  }
  if (c.password.empty() && c.key.empty() && c.role != Role::Server && top_server) {
    return fieldError("config", "password", "missing (give -k PASSWORD or --key BASE64)");
  }
  if (!c.password.empty() && !c.key.empty()) {
    return fieldError("config", "password", "give either password or key, not both");
  }
  if (c.role != Role::Server && c.server_hosts.empty() && c.servers.empty()) {
    return fieldError("config", "server", "missing (give -s HOST, or \"servers\")");
  }
  if (absl::Status s = validateServers(c); !s.ok()) return s;
  if (c.role != Role::Server && c.server_port == 0) {
    return fieldError("config", "server_port", "the server to reach needs a port (1..65535)");
  }
  if (c.role == Role::Tunnel && !c.tunnel_destination) {
    return fieldError("config", "tunnel_address", "missing (give -L host:port)");
  }
  if (c.udp_over_tcp && c.role == Role::Server) {
    return fieldError("config", "udp_over_tcp",
                      "for local and tunnel only (the server accepts UDP over TCP by itself)");
  }
  if (c.udp_over_tcp && c.mode == Mode::TcpOnly) {
    return fieldError("config", "udp_over_tcp", "needs the UDP relay on (-u, or mode)");
  }
  if (absl::Status s = validatePlugin(c); !s.ok()) return s;
  if (!c.run_as.empty()) {
    if (auto who = lookUpUser(c.run_as); !who.ok()) {
      return fieldError("config", "user", who.status().message());
    }
  }
  if (absl::Status s = validateEtcd(c); !s.ok()) return s;
  if (auto forbidden = IpNetworks::parse(c.forbidden_ip); !forbidden.ok()) {
    return fieldError("config", "forbidden_ip", forbidden.status().message());
  }
  if (!c.acl.empty()) {
    if (auto acl = Acl::load(c.acl); !acl.ok()) return fieldError("config", "acl", acl.status().message());
  }
  if (!c.hosts_file.empty() && !std::ifstream(c.hosts_file)) {
    return fieldError("config", "hosts_file", absl::StrCat(c.hosts_file, ": cannot be read"));
  }
  if (!c.pid_file.empty() && c.pid_file.back() == '/') {
    return fieldError("config", "pid_file", "names a directory, not a file");
  }
  if (c.dns_min_ttl_seconds > c.dns_max_ttl_seconds) {
    return fieldError(
        "config", "dns_min_ttl",
        absl::StrCat(c.dns_min_ttl_seconds, " is above dns_max_ttl (", c.dns_max_ttl_seconds, ")"));
  }
  return absl::OkStatus();
}

std::string usage(Role role) {
  const Config defaults = roleDefaults(role);
  std::string out = absl::StrCat(
      synopsis(role), "Options (in brackets: the key in the JSON file; flags override it):\n");
  for (const OptionSpec& o : optionTable()) {
    if (appliesTo(o, role)) absl::StrAppend(&out, helpEntry(o, defaults));
  }
  absl::StrAppend(&out, kBooleanRule);
  return out;
}

std::string checkReport(const Config& c) {
  std::vector<const OptionSpec*> shown;
  std::vector<absl::string_view> ignored;  // set, but not for this role
  size_t width = 0;
  for (const OptionSpec& o : optionTable()) {
    if (o.kind == OptionKind::Command) continue;
    if (appliesTo(o, c.role)) {
      shown.push_back(&o);
      width = std::max(width, std::strlen(o.name));
    } else if (optionSource(c, o.name) != OptionSource::Default) {
      ignored.push_back(o.name);
    }
  }
  std::string out = absl::StrCat("shadowrelay ", roleName(c.role),
                                 ": options in effect (value, then where it came from)\n");
  for (const OptionSpec* o : shown) {
    const auto source = static_cast<size_t>(optionSource(c, o->name));
    absl::StrAppendFormat(&out, "  %-*s  %s  (%s)\n", static_cast<int>(width), o->name,
                          valueText(*o, c), kSourceNames[source]);
  }
  if (!ignored.empty()) {
    absl::StrAppend(&out, "  ignored by ", roleName(c.role), ": ", absl::StrJoin(ignored, ", "),
                    "\n");
  }
  return out;
}

std::string describe(const Config& c) {
  return absl::StrCat(
      roleName(c.role), " method=", c.method, " servers=", absl::StrJoin(c.server_hosts, ","),
      " port=", c.server_port,
      c.role == Role::Server ? "" : absl::StrCat(" local=", c.local_address, ":", c.local_port),
      " timeout=", c.timeout_seconds,
      "s secret=", c.key.empty() ? (c.password.empty() ? "none" : "password") : "key");
}

}  // namespace shadowrelay::relay
