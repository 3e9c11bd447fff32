// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/types/span.h"
#include "relay/config.h"

namespace shadowrelay::relay {

/// The Config member an option writes. Its type picks the parser and the printed form:
/// uint16_t a port (1..65535), int a whole number in [min, max], bool a boolean, Mode a mode,
/// optional<Endpoint> host:port, vector<string> a list (a repeatable flag; flags replace the
/// file's list), vector<ConfigUser> the users (file only), vector<ServerEntry> the client's
/// servers (file only), string free text.
using OptionField =
    std::variant<std::string Config::*, uint16_t Config::*, int Config::*, bool Config::*,
                 Mode Config::*, std::optional<Endpoint> Config::*,
                 std::vector<std::string> Config::*, std::vector<ConfigUser> Config::*,
                 std::vector<ServerEntry> Config::*>;

enum class OptionKind {
  Setting,     ///< a key of the JSON file and flags; one line of the check report
  ConfigFile,  ///< -c: names the JSON file, which is applied before every other flag
  Command,     ///< --help, --check-config: flags only, not reported
};

/// A flag that stands for one value of its option (-u: "mode" tcp_and_udp); takes no value.
struct FlagAlias {
  const char* flag = nullptr;
  const char* value = nullptr;
};

inline constexpr uint8_t roleBit(Role role) { return uint8_t{1} << static_cast<int>(role); }
inline constexpr uint8_t kAllRoles = roleBit(Role::Server) | roleBit(Role::Local) |
                                     roleBit(Role::Tunnel);
inline constexpr uint8_t kClientRoles = roleBit(Role::Local) | roleBit(Role::Tunnel);

/// One option of `shadowrelay server|local|tunnel`, declared once in optionTable(): the flag
/// parser, the JSON reader, usage() and checkReport() are all made from these entries.
/// Defaults are Config's member initializers (per role: see parseConfig).
struct OptionSpec {
  const char* name = nullptr;  ///< its JSON key; names it in errors and in the report
  OptionKind kind = OptionKind::Setting;
  const char* short_flag = nullptr;  ///< "-p", or null
  const char* long_flag = nullptr;   ///< "--server-port", or null (file only)
  FlagAlias aliases[2] = {};
  const char* value_name = nullptr;  ///< "PORT" in "-p PORT"; null for booleans
  uint8_t roles = kAllRoles;         ///< where --help and the report show it
  OptionField field;
  int min = 0;  ///< int fields: the accepted range
  int max = 0;
  bool secret = false;            ///< reported as "(set)", never the value
  bool Config::*given = nullptr;  ///< set to true whenever the file or a flag sets the option
  const char* help = "";
  const char* server_help = nullptr;  ///< the server's meaning, where it differs from help
  const char* unset = nullptr;        ///< what an empty or 0 value means ("one per CPU")
};

/// Every option, in --help order. Names and flags are unique.
absl::Span<const OptionSpec> optionTable();

inline bool appliesTo(const OptionSpec& option, Role role) {
  return (option.roles & roleBit(role)) != 0;
}

}  // namespace shadowrelay::relay
