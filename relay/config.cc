// SPDX-License-Identifier: Apache-2.0
#include "relay/config.h"

#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "crypto/method.h"
#include "nlohmann/json.hpp"

namespace shadowrelay::relay {
namespace {

using json = nlohmann::json;

absl::Status fieldError(absl::string_view where, absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", field, ": ", what));
}

absl::StatusOr<uint16_t> parsePort(absl::string_view text) {
  int port = 0;
  if (!absl::SimpleAtoi(text, &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a port (1..65535)"));
  }
  return static_cast<uint16_t>(port);
}

absl::StatusOr<int> parsePositive(absl::string_view text, int max) {
  int v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < 1 || v > max) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a number in 1..", max));
  }
  return v;
}

absl::StatusOr<Mode> parseMode(absl::string_view text) {
  if (text == "tcp_only") return Mode::TcpOnly;
  if (text == "tcp_and_udp") return Mode::TcpAndUdp;
  if (text == "udp_only") return Mode::UdpOnly;
  return absl::InvalidArgumentError(
      absl::StrCat("\"", text, "\" is not one of tcp_only, tcp_and_udp, udp_only"));
}

// JSON values may be numbers or numeric strings (libev accepts both for ports).
absl::StatusOr<std::string> scalarText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<long long>());
  return absl::InvalidArgumentError("must be a string or an integer");
}

absl::StatusOr<bool> boolValue(const json& v) {
  if (v.is_boolean()) return v.get<bool>();
  return absl::InvalidArgumentError("must be true or false");
}

// "users": [{"name": ..., "password" | "key": ..., "method": ..., "port": ...}]. Errors name the
// entry, e.g. "users[2].port: ...".
absl::Status parseUsers(const json& v, std::vector<ConfigUser>* users) {
  if (!v.is_array()) return absl::InvalidArgumentError("must be a list of {name, password, method}");
  users->clear();
  for (size_t i = 0; i < v.size(); ++i) {
    const json& entry = v[i];
    const std::string where = absl::StrCat("users[", i, "]");
    if (!entry.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": not an object"));
    ConfigUser user;
    for (auto it = entry.begin(); it != entry.end(); ++it) {
      const std::string& key = it.key();
      std::string* text = key == "name"       ? &user.name
                          : key == "password" ? &user.password
                          : key == "key"      ? &user.key
                          : key == "method"   ? &user.method
                                              : nullptr;
      if (text != nullptr) {
        if (!it.value().is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": must be a string"));
        }
        *text = it.value().get<std::string>();
      } else if (key == "port") {
        auto t = scalarText(it.value());
        auto p = t.ok() ? parsePort(*t) : absl::StatusOr<uint16_t>(t.status());
        if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ".port: ", p.status().message()));
        user.port = *p;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": unknown key"));
      }
    }
    if (user.name.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ".name: missing"));
    if (user.password.empty() == user.key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".password: give either password or key"));
    }
    users->push_back(std::move(user));
  }
  return absl::OkStatus();
}

absl::Status applyJson(const std::string& path, Config& c) {
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
  using Setter = std::function<absl::Status(const json&)>;
  auto str = [](std::string& field) -> Setter {
    return [&field](const json& v) -> absl::Status {
      if (!v.is_string()) return absl::InvalidArgumentError("must be a string");
      field = v.get<std::string>();
      return absl::OkStatus();
    };
  };
  auto port = [](uint16_t& field) -> Setter {
    return [&field](const json& v) -> absl::Status {
      auto t = scalarText(v);
      if (!t.ok()) return t.status();
      auto p = parsePort(*t);
      if (!p.ok()) return p.status();
      field = *p;
      return absl::OkStatus();
    };
  };
  auto number = [](int& field, int max) -> Setter {
    return [&field, max](const json& v) -> absl::Status {
      auto t = scalarText(v);
      if (!t.ok()) return t.status();
      auto n = parsePositive(*t, max);
      if (!n.ok()) return n.status();
      field = *n;
      return absl::OkStatus();
    };
  };
  auto boolean = [](bool& field) -> Setter {
    return [&field](const json& v) -> absl::Status {
      auto b = boolValue(v);
      if (!b.ok()) return b.status();
      field = *b;
      return absl::OkStatus();
    };
  };
  const std::map<std::string, Setter> setters = {
      {"server",
       [&c](const json& v) -> absl::Status {
         c.server_hosts.clear();
         if (v.is_string()) {
           c.server_hosts.push_back(v.get<std::string>());
           return absl::OkStatus();
         }
         if (!v.is_array() || v.empty()) {
           return absl::InvalidArgumentError("must be a string or a non-empty list of strings");
         }
         for (const json& h : v) {
           if (!h.is_string()) return absl::InvalidArgumentError("list entries must be strings");
           c.server_hosts.push_back(h.get<std::string>());
         }
         return absl::OkStatus();
       }},
      {"server_port", port(c.server_port)},
      {"password", str(c.password)},
      {"key", str(c.key)},
      {"method",
       [&c](const json& v) -> absl::Status {
         if (!v.is_string()) return absl::InvalidArgumentError("must be a string");
         c.method = v.get<std::string>();
         c.method_given = true;
         return absl::OkStatus();
       }},
      {"timeout", number(c.timeout_seconds, 86400 * 7)},
      {"local_address", str(c.local_address)},
      {"local_port", port(c.local_port)},
      {"mode",
       [&c](const json& v) -> absl::Status {
         if (!v.is_string()) return absl::InvalidArgumentError("must be a string");
         auto m = parseMode(v.get<std::string>());
         if (!m.ok()) return m.status();
         c.mode = *m;
         return absl::OkStatus();
       }},
      {"nameserver", str(c.nameserver)},
      {"ipv6_first", boolean(c.ipv6_first)},
      {"fast_open", boolean(c.fast_open)},
      {"no_delay", boolean(c.no_delay)},
      {"reuse_port", boolean(c.reuse_port)},
      {"workers", number(c.workers, 1024)},
      {"handshake_timeout", number(c.handshake_timeout_seconds, 3600)},
      {"connect_timeout", number(c.connect_timeout_seconds, 3600)},
      {"drain_timeout", number(c.drain_timeout_seconds, 3600)},
      {"udp_timeout", number(c.udp_timeout_seconds, 86400)},
      {"udp_max_associations", number(c.udp_max_associations, 1000000)},
      {"udp_over_tcp", boolean(c.udp_over_tcp)},
      {"allow_private", boolean(c.allow_private)},
      {"crypto_provider", str(c.crypto_provider)},
      {"state_dir", str(c.state_dir)},
      {"control_listen",
       [&c](const json& v) -> absl::Status {
         if (!v.is_string()) return absl::InvalidArgumentError("must be a string host:port or off");
         c.control_listen = v.get<std::string>();
         c.control_listen_given = true;
         return absl::OkStatus();
       }},
      {"control_token_file", str(c.control_token_file)},
      {"control_tls_cert", str(c.control_tls_cert)},
      {"control_tls_key", str(c.control_tls_key)},
      {"control_tls_client_ca", str(c.control_tls_client_ca)},
      {"public_host", str(c.public_host)},
      {"metrics_listen",
       [&c](const json& v) -> absl::Status {
         if (!v.is_string()) return absl::InvalidArgumentError("must be a string host:port or off");
         c.metrics_listen = v.get<std::string>();
         c.metrics_listen_given = true;
         return absl::OkStatus();
       }},
      {"metrics_per_user", boolean(c.metrics_per_user)},
      {"users", [&c](const json& v) { return parseUsers(v, &c.users); }},
      {"tunnel_address",
       [&c](const json& v) -> absl::Status {
         if (!v.is_string()) return absl::InvalidArgumentError("must be a string host:port");
         auto hp = parseHostPort(v.get<std::string>());
         if (!hp.ok()) return hp.status();
         c.tunnel_destination = *hp;
         return absl::OkStatus();
       }},
  };
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    auto setter = setters.find(it.key());
    if (setter == setters.end()) {
      return fieldError(path, it.key(), "unknown key");
    }
    if (absl::Status s = setter->second(it.value()); !s.ok()) {
      return fieldError(path, it.key(), s.message());
    }
  }
  return absl::OkStatus();
}

struct FlagSpec {
  const char* short_name;  // may be null
  const char* long_name;   // may be null
  bool takes_value;
  std::function<absl::Status(Config&, absl::string_view)> apply;
};

std::vector<FlagSpec> flagSpecs() {
  return {
      {"-s", "--server", true,
       [](Config& c, absl::string_view v) {
         c.server_hosts.emplace_back(v);
         return absl::OkStatus();
       }},
      {"-p", "--server-port", true,
       [](Config& c, absl::string_view v) {
         auto p = parsePort(v);
         if (!p.ok()) return p.status();
         c.server_port = *p;
         return absl::OkStatus();
       }},
      {"-k", "--password", true,
       [](Config& c, absl::string_view v) {
         c.password = std::string(v);
         return absl::OkStatus();
       }},
      {nullptr, "--key", true,
       [](Config& c, absl::string_view v) {
         c.key = std::string(v);
         return absl::OkStatus();
       }},
      {"-m", "--method", true,
       [](Config& c, absl::string_view v) {
         c.method = std::string(v);
         c.method_given = true;
         return absl::OkStatus();
       }},
      {"-t", "--timeout", true,
       [](Config& c, absl::string_view v) {
         auto n = parsePositive(v, 86400 * 7);
         if (!n.ok()) return n.status();
         c.timeout_seconds = *n;
         return absl::OkStatus();
       }},
      {"-l", "--local-port", true,
       [](Config& c, absl::string_view v) {
         auto p = parsePort(v);
         if (!p.ok()) return p.status();
         c.local_port = *p;
         return absl::OkStatus();
       }},
      {"-b", "--local-address", true,
       [](Config& c, absl::string_view v) {
         c.local_address = std::string(v);
         return absl::OkStatus();
       }},
      {"-L", "--tunnel", true,
       [](Config& c, absl::string_view v) {
         auto hp = parseHostPort(v);
         if (!hp.ok()) return hp.status();
         c.tunnel_destination = *hp;
         return absl::OkStatus();
       }},
      {"-u", nullptr, false,
       [](Config& c, absl::string_view) {
         c.mode = Mode::TcpAndUdp;
         return absl::OkStatus();
       }},
      {"-U", nullptr, false,
       [](Config& c, absl::string_view) {
         c.mode = Mode::UdpOnly;
         return absl::OkStatus();
       }},
      {"-d", "--nameserver", true,
       [](Config& c, absl::string_view v) {
         c.nameserver = std::string(v);
         return absl::OkStatus();
       }},
      {"-6", nullptr, false,
       [](Config& c, absl::string_view) {
         c.ipv6_first = true;
         return absl::OkStatus();
       }},
      {"-v", "--verbose", false,
       [](Config& c, absl::string_view) {
         c.verbose = true;
         return absl::OkStatus();
       }},
      {nullptr, "--fast-open", false,
       [](Config& c, absl::string_view) {
         c.fast_open = true;
         return absl::OkStatus();
       }},
      {nullptr, "--no-delay", false,
       [](Config& c, absl::string_view) {
         c.no_delay = true;
         return absl::OkStatus();
       }},
      {nullptr, "--reuse-port", false,
       [](Config& c, absl::string_view) {
         c.reuse_port = true;
         return absl::OkStatus();
       }},
      {nullptr, "--udp-over-tcp", false,
       [](Config& c, absl::string_view) {
         c.udp_over_tcp = true;
         return absl::OkStatus();
       }},
      {nullptr, "--workers", true,
       [](Config& c, absl::string_view v) {
         auto n = parsePositive(v, 1024);
         if (!n.ok()) return n.status();
         c.workers = *n;
         return absl::OkStatus();
       }},
      {nullptr, "--handshake-timeout", true,
       [](Config& c, absl::string_view v) {
         auto n = parsePositive(v, 3600);
         if (!n.ok()) return n.status();
         c.handshake_timeout_seconds = *n;
         return absl::OkStatus();
       }},
      {nullptr, "--connect-timeout", true,
       [](Config& c, absl::string_view v) {
         auto n = parsePositive(v, 3600);
         if (!n.ok()) return n.status();
         c.connect_timeout_seconds = *n;
         return absl::OkStatus();
       }},
      {nullptr, "--udp-timeout", true,
       [](Config& c, absl::string_view v) {
         auto n = parsePositive(v, 86400);
         if (!n.ok()) return n.status();
         c.udp_timeout_seconds = *n;
         return absl::OkStatus();
       }},
      {nullptr, "--udp-max-associations", true,
       [](Config& c, absl::string_view v) {
         auto n = parsePositive(v, 1000000);
         if (!n.ok()) return n.status();
         c.udp_max_associations = *n;
         return absl::OkStatus();
       }},
      {nullptr, "--drain-timeout", true,
       [](Config& c, absl::string_view v) {
         auto n = parsePositive(v, 3600);
         if (!n.ok()) return n.status();
         c.drain_timeout_seconds = *n;
         return absl::OkStatus();
       }},
      {nullptr, "--allow-private", false,
       [](Config& c, absl::string_view) {
         c.allow_private = true;
         return absl::OkStatus();
       }},
      {nullptr, "--crypto-provider", true,
       [](Config& c, absl::string_view v) {
         c.crypto_provider = std::string(v);
         return absl::OkStatus();
       }},
      {nullptr, "--state-dir", true,
       [](Config& c, absl::string_view v) {
         c.state_dir = std::string(v);
         return absl::OkStatus();
       }},
      {nullptr, "--control-listen", true,
       [](Config& c, absl::string_view v) {
         c.control_listen = std::string(v);
         c.control_listen_given = true;
         return absl::OkStatus();
       }},
      {nullptr, "--control-token-file", true,
       [](Config& c, absl::string_view v) {
         c.control_token_file = std::string(v);
         return absl::OkStatus();
       }},
      {nullptr, "--control-tls-cert", true,
       [](Config& c, absl::string_view v) {
         c.control_tls_cert = std::string(v);
         return absl::OkStatus();
       }},
      {nullptr, "--control-tls-key", true,
       [](Config& c, absl::string_view v) {
         c.control_tls_key = std::string(v);
         return absl::OkStatus();
       }},
      {nullptr, "--control-tls-client-ca", true,
       [](Config& c, absl::string_view v) {
         c.control_tls_client_ca = std::string(v);
         return absl::OkStatus();
       }},
      {nullptr, "--public-host", true,
       [](Config& c, absl::string_view v) {
         c.public_host = std::string(v);
         return absl::OkStatus();
       }},
      {nullptr, "--metrics-listen", true,
       [](Config& c, absl::string_view v) {
         c.metrics_listen = std::string(v);
         c.metrics_listen_given = true;
         return absl::OkStatus();
       }},
      {nullptr, "--metrics-per-user", true,
       [](Config& c, absl::string_view v) {
         if (v != "true" && v != "false") {
           return absl::InvalidArgumentError("must be true or false (--metrics-per-user=false)");
         }
         c.metrics_per_user = v == "true";
         return absl::OkStatus();
       }},
      {nullptr, "--check-config", false,
       [](Config& c, absl::string_view) {
         c.check_only = true;
         return absl::OkStatus();
       }},
      {"-h", "--help", false,
       [](Config& c, absl::string_view) {
         c.help = true;
         return absl::OkStatus();
       }},
  };
}

// "host:port" (port 0: any free port), "unix:/path" (control API) or "off".
absl::Status checkListen(const std::string& listen) {
  if (listen.empty() || listen == kListenOff || absl::StartsWith(listen, "unix:")) {
    return absl::OkStatus();
  }
  std::string probe = listen;
  if (absl::EndsWith(probe, ":0")) probe.back() = '1';  // parsePort refuses 0
  return parseHostPort(probe).status();
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

absl::StatusOr<HostPort> parseHostPort(absl::string_view text) {
  HostPort hp;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not [ipv6]:port"));
    }
    hp.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos || colon == 0 ||
        text.substr(0, colon).find(':') != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text, "\" is not host:port (write IPv6 as [addr]:port)"));
    }
    hp.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  auto port = parsePort(port_text);
  if (!port.ok() || hp.host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not host:port"));
  }
  hp.port = *port;
  return hp;
}

absl::StatusOr<Config> parseConfig(Role role, int argc, const char* const* argv) {
  Config c;
  c.role = role;
  if (role == Role::Server) {
    c.local_address = "";
    c.metrics_listen = kDefaultMetricsListen;
  } else {
    c.metrics_listen = kListenOff;
    c.control_listen = kListenOff;
  }
  // Pass 1: find -c so the file is applied before the flags.
  for (int i = 0; i < argc; ++i) {
    const absl::string_view a = argv[i];
    if ((a == "-c" || a == "--config") && i + 1 < argc) {
      c.config_file = argv[i + 1];
    } else if (absl::StartsWith(a, "--config=")) {
      c.config_file = std::string(a.substr(9));
    }
  }
  if (!c.config_file.empty()) {
    if (absl::Status s = applyJson(c.config_file, c); !s.ok()) {
      return s;
    }
  }
  // Pass 2: flags override the file. "-s" given on the command line replaces the file's list.
  bool servers_from_flags = false;
  const std::vector<FlagSpec> specs = flagSpecs();
  for (int i = 0; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "-c" || a == "--config") {
      ++i;
      continue;
    }
    if (absl::StartsWith(a, "--config=")) {
      continue;
    }
    absl::string_view name = a;
    std::optional<std::string> inline_value;
    if (absl::StartsWith(a, "--")) {
      const size_t eq = a.find('=');
      if (eq != absl::string_view::npos) {
        name = a.substr(0, eq);
        inline_value = std::string(a.substr(eq + 1));
      }
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if ((s.short_name != nullptr && name == s.short_name) ||
          (s.long_name != nullptr && name == s.long_name)) {
        spec = &s;
        break;
      }
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option \"", a, "\" (see shadowrelay ", roleName(role), " --help)"));
    }
    std::string value;
    if (spec->takes_value) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("option ", name, " needs a value"));
      }
    } else if (inline_value) {
      return absl::InvalidArgumentError(absl::StrCat("option ", name, " takes no value"));
    }
    if (spec->short_name != nullptr && absl::string_view(spec->short_name) == "-s" &&
        !servers_from_flags) {
      c.server_hosts.clear();
      servers_from_flags = true;
    }
    if (absl::Status s = spec->apply(c, value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("option ", name, ": ", s.message()));
    }
  }
  return c;
}

absl::Status validateConfig(const Config& c) {
  auto method = crypto::findMethod(c.method);
  if (!method.ok()) {
    return fieldError("config", "method", method.status().message());
  }
  if (c.role != Role::Server && !c.users.empty()) {
    return fieldError("config", "users", "for the server only");
  }
  for (size_t i = 0; i < c.users.size(); ++i) {
    if (c.users[i].method.empty()) continue;
    if (auto m = crypto::findMethod(c.users[i].method); !m.ok()) {
      return fieldError("config", absl::StrCat("users[", i, "].method"), m.status().message());
    }
  }
  if (absl::Status s = checkListen(c.control_listen); !s.ok()) {
    return fieldError("config", "control_listen", s.message());
  }
  if (absl::Status s = checkListen(c.metrics_listen); !s.ok()) {
    return fieldError("config", "metrics_listen", s.message());
  }
  if (c.password.empty() && c.key.empty() && c.role != Role::Server) {
    return fieldError("config", "password", "missing (give -k PASSWORD or --key BASE64)");
  }
  if (!c.password.empty() && !c.key.empty()) {
    return fieldError("config", "password", "give either password or key, not both");
  }
  if (c.role != Role::Server && c.server_hosts.empty()) {
    return fieldError("config", "server", "missing (give -s HOST)");
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
  return absl::OkStatus();
}

std::string usage(Role role) {
  std::string common =
      "  -c FILE                 JSON config (shadowsocks keys); flags override it\n"
      "  -m METHOD               aes-128-gcm, aes-192-gcm, aes-256-gcm,\n"
      "                          chacha20-ietf-poly1305 (default), xchacha20-ietf-poly1305\n"
      "  -k PASSWORD             password (EVP_BytesToKey); or --key BASE64 for a raw key\n"
      "  -t SECONDS              idle timeout (default 300)\n"
      "  -u / -U                 TCP and UDP / UDP only\n"
      "  -d SERVERS              name servers, e.g. 1.1.1.1,127.0.0.1:5353\n"
      "  -6                      prefer IPv6 when resolving\n"
      "  -v                      verbose logging\n"
      "  --fast-open --no-delay --reuse-port\n"
      "  --workers N             worker threads (default: one per CPU)\n"
      "  --handshake-timeout S   (default 60)  --connect-timeout S (default 10)\n"
      "  --drain-timeout S       graceful-stop deadline (default 10)\n"
      "  --udp-timeout S         UDP association idle timeout (default 300; 30 for port 53)\n"
      "  --udp-max-associations N  UDP association table bound per worker (default 16384)\n"
      "  --crypto-provider auto|openssl|boringssl\n"
      "  --check-config          validate the configuration (and the configured users) and\n"
      "                          exit; writes nothing\n";
  switch (role) {
    case Role::Server:
      return "usage: shadowrelay server [-s ADDR] [-p PORT] (-k PASSWORD | --key B64) [options]\n"
             "  -s ADDR                 listen address (repeatable; default 0.0.0.0)\n"
             "  -p PORT                 listen port (default 8388)\n"
             "  --allow-private         allow loopback/private/link-local targets\n"
             "  --state-dir DIR         where a generated key, the API's users and the control\n"
             "                          token are kept\n"
             "  --control-listen ADDR   gRPC control API (default 127.0.0.1:50051; off)\n"
             "  --control-token-file F  its bearer token (or $SHADOWRELAY_CONTROL_TOKEN; default:\n"
             "                          generated in the state directory)\n"
             "  --control-tls-cert F --control-tls-key F [--control-tls-client-ca F]\n"
             "  --public-host HOST      host of the users' ss:// URLs\n"
             "  --metrics-listen ADDR   Prometheus /metrics (default 127.0.0.1:9464; off)\n"
             "  --metrics-per-user=false  no user label on the metrics\n" +
             common;
    case Role::Local:
      return "usage: shadowrelay local -s SERVER -p PORT (-k PASSWORD | --key B64) [-b ADDR] [-l "
             "PORT] [options]\n"
             "  -s/-p                   the Shadowsocks server\n"
             "  -b ADDR -l PORT         SOCKS5 listen address (default 127.0.0.1:1080)\n"
             "  --udp-over-tcp          with -u: carry UDP inside TCP streams (sing-box UoT v2)\n"
             "  --metrics-listen ADDR   Prometheus /metrics (default off)\n" +
             common;
    case Role::Tunnel:
      return "usage: shadowrelay tunnel -s SERVER -p PORT -k PASSWORD -L HOST:PORT [-b ADDR] [-l "
             "PORT] [options]\n"
             "  -L HOST:PORT            the fixed destination, reached through the server\n"
             "  --udp-over-tcp          with -u/-U: carry UDP inside TCP streams (UoT v2)\n" +
             common;
  }
  return common;
}

std::string describe(const Config& c) {
  return absl::StrCat(roleName(c.role), " method=", c.method,
                      " servers=", absl::StrJoin(c.server_hosts, ","), " port=", c.server_port,
                      c.role == Role::Server ? "" : absl::StrCat(" local=", c.local_address, ":", c.local_port),
                      " timeout=", c.timeout_seconds, "s secret=",
                      c.key.empty() ? (c.password.empty() ? "none" : "password") : "key");
}

}  // namespace shadowrelay::relay
