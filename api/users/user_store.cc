// SPDX-License-Identifier: Apache-2.0
#include "api/users/user_store.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "nlohmann/json.hpp"
#include "relay/base/durable_file.h"

namespace shadowrelay::api::users {
namespace {

using json = nlohmann::json;

constexpr absl::string_view kFormat = "shadowrelay-users";
constexpr int kVersion = 1;

std::string errnoText(int err) { return std::strerror(err); }

absl::Status posixError(absl::string_view what, const std::string& path, int err) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", errnoText(err)));
}

std::string sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    return "";
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), len));
}

std::string formatTime(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

// Canonical text of the checksummed part: compact, keys sorted (nlohmann's object is a std::map).
std::string canonical(const json& body) { return body.dump(); }

json encodeUser(const User& u) {
  json j = json::object();
  j["name"] = u.name;
  j["method"] = u.method;
  if (!u.password.empty()) {
    j["password"] = u.password;
  }
  if (!u.key.empty()) {
    j["key"] = u.key;
  }
  j["port"] = u.port;
  j["enabled"] = u.enabled;
  if (!u.plugin.empty()) {  // absent otherwise: stores without plugins keep their text
    j["plugin"] = u.plugin;
    j["plugin_opts"] = u.plugin_opts;
  }
  j["limits"] = {{"max_connections", u.limits.max_connections},
                 {"data_quota_bytes", u.limits.data_quota_bytes}};
  // The fields of issue 18 are written only when set: a store without them keeps its text, and
  // one written before them loads (decodeUser takes each as optional).
  if (u.limits.expire_after_first_use > absl::ZeroDuration()) {
    j["limits"]["expire_after_first_use"] = absl::FormatDuration(u.limits.expire_after_first_use);
  }
  if (u.limits.data_quota_period != QuotaPeriod::None) {
    j["limits"]["data_quota_period"] = std::string(quotaPeriodName(u.limits.data_quota_period));
  }
  if (u.limits.max_devices != 0) {  // absent otherwise (optional on load: older stores)
    j["limits"]["max_devices"] = u.limits.max_devices;
  }
  if (u.limits.bytes_per_second != 0) {  // absent otherwise: optional on load (older stores)
    j["limits"]["bytes_per_second"] = u.limits.bytes_per_second;
  }
  j["created"] = formatTime(u.created);
  j["traffic"] = {{"bytes_up", u.traffic.bytes_up},
                  {"bytes_down", u.traffic.bytes_down},
                  {"tcp_connections", u.traffic.tcp_connections},
                  {"udp_packets", u.traffic.udp_packets}};
  if (u.expire_time.has_value()) j["expire_time"] = formatTime(*u.expire_time);
  if (u.first_use.has_value()) j["first_use"] = formatTime(*u.first_use);
  if (u.quota_period_start.has_value()) {
    j["quota_period_start"] = formatTime(*u.quota_period_start);
    j["quota_base_bytes"] = u.quota_base_bytes;
  }
  return j;
}

// Typed field readers: errors name the field; nothing throws.
absl::Status fieldError(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::StatusOr<std::string> getString(const json& obj, const char* field, bool required) {
  auto it = obj.find(field);
  if (it == obj.end()) {
    if (required) {
      return fieldError(field, "missing");
    }
    return std::string();
  }
  if (!it->is_string()) {
    return fieldError(field, "not a string");
  }
  return it->get<std::string>();
}

absl::StatusOr<uint64_t> getUnsigned(const json& obj, const char* field, uint64_t max) {
  auto it = obj.find(field);
  if (it == obj.end()) {
    return fieldError(field, "missing");
  }
  if (!it->is_number_unsigned()) {
    return fieldError(field, "not a non-negative integer");
  }
  const uint64_t v = it->get<uint64_t>();
  if (v > max) {
    return fieldError(field, absl::StrCat("larger than ", max));
  }
  return v;
}

// An optional RFC 3339 time: nullopt when absent.
absl::StatusOr<std::optional<absl::Time>> getOptionalTime(const json& obj, const char* field) {
  if (!obj.contains(field)) return std::optional<absl::Time>();
  auto text = getString(obj, field, true);
  if (!text.ok()) return text.status();
  absl::Time t;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, *text, &t, &error)) return fieldError(field, error);
  return std::optional<absl::Time>(t);
}

absl::StatusOr<bool> getBool(const json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end()) {
    return fieldError(field, "missing");
  }
  if (!it->is_boolean()) {
    return fieldError(field, "not true or false");
  }
  return it->get<bool>();
}

absl::StatusOr<const json*> getObject(const json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end() || !it->is_object()) {
    return fieldError(field, "missing or not an object");
  }
  return &*it;
}

#define SR_ASSIGN_OR_RETURN(lhs, expr) \
  auto lhs##_or = (expr);              \
  if (!lhs##_or.ok()) {                \
    return lhs##_or.status();          \
  }                                    \
  auto lhs = *std::move(lhs##_or)

absl::StatusOr<User> decodeUser(const json& j) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError("not an object");
  }
  User u;
  u.source = UserSource::Api;
  SR_ASSIGN_OR_RETURN(name, getString(j, "name", true));
  if (absl::Status s = validateUserName(name); !s.ok()) {
    return s;
  }
  u.name = name;
  auto fail = [&u](absl::Status s) {
    return absl::Status(s.code(), absl::StrCat("user \"", u.name, "\": ", s.message()));
  };
  SR_ASSIGN_OR_RETURN(method_name, getString(j, "method", true));
  auto method = crypto::findAnyMethod(method_name);
  if (!method.ok()) {
    return fail(method.status());
  }
  u.method = std::string((*method)->name);
  SR_ASSIGN_OR_RETURN(password, getString(j, "password", false));
  SR_ASSIGN_OR_RETURN(key, getString(j, "key", false));
  if (auto k = crypto::masterKeyFor(**method, password, key); !k.ok()) {
    return fail(k.status());
  }
  u.password = std::move(password);
  u.key = std::move(key);
  SR_ASSIGN_OR_RETURN(port, getUnsigned(j, "port", 65535));
  u.port = static_cast<uint16_t>(port);
  SR_ASSIGN_OR_RETURN(enabled, getBool(j, "enabled"));
  u.enabled = enabled;
  SR_ASSIGN_OR_RETURN(plugin, getString(j, "plugin", false));
  SR_ASSIGN_OR_RETURN(plugin_opts, getString(j, "plugin_opts", false));
  if (plugin.empty() && !plugin_opts.empty()) {
    return fail(fieldError("plugin_opts", "without a plugin"));
  }
  u.plugin = std::move(plugin);
  u.plugin_opts = std::move(plugin_opts);
  SR_ASSIGN_OR_RETURN(limits, getObject(j, "limits"));
  SR_ASSIGN_OR_RETURN(max_connections, getUnsigned(*limits, "max_connections",
                                                   std::numeric_limits<uint32_t>::max()));
  SR_ASSIGN_OR_RETURN(
      quota, getUnsigned(*limits, "data_quota_bytes", std::numeric_limits<uint64_t>::max()));
  u.limits.max_connections = static_cast<uint32_t>(max_connections);
  u.limits.data_quota_bytes = quota;
  SR_ASSIGN_OR_RETURN(after_first_use, getString(*limits, "expire_after_first_use", false));
  if (!after_first_use.empty() &&
      (!absl::ParseDuration(after_first_use, &u.limits.expire_after_first_use) ||
       u.limits.expire_after_first_use < absl::ZeroDuration())) {
    return fail(fieldError("limits.expire_after_first_use", "not a duration"));
  }
  SR_ASSIGN_OR_RETURN(period, getString(*limits, "data_quota_period", false));
  if (!period.empty()) {
    auto parsed = parseQuotaPeriod(period);
    if (!parsed.ok()) return fail(fieldError("limits.data_quota_period", parsed.status().message()));
    u.limits.data_quota_period = *parsed;
  }
  if (limits->contains("max_devices")) {
    SR_ASSIGN_OR_RETURN(max_devices, getUnsigned(*limits, "max_devices",
                                                 std::numeric_limits<uint32_t>::max()));
    u.limits.max_devices = static_cast<uint32_t>(max_devices);
  }
  if (limits->contains("bytes_per_second")) {  // written by issue 18 on; absent: unlimited
    SR_ASSIGN_OR_RETURN(rate, getUnsigned(*limits, "bytes_per_second",
                                          std::numeric_limits<uint64_t>::max()));
    u.limits.bytes_per_second = rate;
  }
  SR_ASSIGN_OR_RETURN(created, getString(j, "created", true));
  std::string time_error;
  if (!absl::ParseTime(absl::RFC3339_full, created, &u.created, &time_error)) {
    return fail(fieldError("created", time_error));
  }
  SR_ASSIGN_OR_RETURN(traffic, getObject(j, "traffic"));
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  SR_ASSIGN_OR_RETURN(up, getUnsigned(*traffic, "bytes_up", kMax));
  SR_ASSIGN_OR_RETURN(down, getUnsigned(*traffic, "bytes_down", kMax));
  SR_ASSIGN_OR_RETURN(tcp, getUnsigned(*traffic, "tcp_connections", kMax));
  SR_ASSIGN_OR_RETURN(udp, getUnsigned(*traffic, "udp_packets", kMax));
  u.traffic = TrafficCounters{up, down, tcp, udp};
  SR_ASSIGN_OR_RETURN(expire_time, getOptionalTime(j, "expire_time"));
  SR_ASSIGN_OR_RETURN(first_use, getOptionalTime(j, "first_use"));
  SR_ASSIGN_OR_RETURN(period_start, getOptionalTime(j, "quota_period_start"));
  u.expire_time = expire_time;
  u.first_use = first_use;
  u.quota_period_start = period_start;
  if (period_start.has_value()) {
    SR_ASSIGN_OR_RETURN(base, getUnsigned(j, "quota_base_bytes", kMax));
    u.quota_base_bytes = base;
  }
  return u;
}

json encodeIdentityKey(const PortIdentityKey& k) {
  json j = json::object();
  j["port"] = k.port;
  j["method"] = k.method;
  if (!k.key.empty()) {
    j["key"] = k.key;
  } else {
    j["key_hash"] = k.key_hash;
  }
  return j;
}

absl::StatusOr<PortIdentityKey> decodeIdentityKey(const json& j) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError("not an object");
  }
  PortIdentityKey k;
  SR_ASSIGN_OR_RETURN(port, getUnsigned(j, "port", 65535));
  k.port = static_cast<uint16_t>(port);
  SR_ASSIGN_OR_RETURN(method_name, getString(j, "method", true));
  auto method = crypto::findAnyMethod(method_name);
  if (!method.ok()) {
    return fieldError("method", method.status().message());
  }
  if (!crypto::usesSeparateHeader(**method)) {
    return fieldError("method", absl::StrCat((*method)->name, " has no identity headers"));
  }
  k.method = std::string((*method)->name);
  SR_ASSIGN_OR_RETURN(key, getString(j, "key", false));
  SR_ASSIGN_OR_RETURN(key_hash, getString(j, "key_hash", false));
  if (key.empty() == key_hash.empty()) {
    return fieldError("key", "give either key or key_hash");
  }
  if (!key.empty()) {
    if (auto psk = crypto::decodePsk(key, **method); !psk.ok()) {
      return fieldError("key", psk.status().message());
    }
  } else if (key_hash.size() != 2 * sizeof(crypto::UserHash) ||
             key_hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return fieldError("key_hash", "not 32 lower-case hex digits");
  }
  k.key = std::move(key);
  k.key_hash = std::move(key_hash);
  return k;
}

absl::StatusOr<StoreContents> decodeBody(const json& body) {
  StoreContents c;
  SR_ASSIGN_OR_RETURN(generation,
                      getUnsigned(body, "generation", std::numeric_limits<uint64_t>::max()));
  c.generation = generation;
  if (body.contains("default_method")) {
    SR_ASSIGN_OR_RETURN(method_name, getString(body, "default_method", true));
    auto method = crypto::findAnyMethod(method_name);
    if (!method.ok()) {
      return fieldError("default_method", method.status().message());
    }
    c.default_method = std::string((*method)->name);
  }
  auto users = body.find("users");
  if (users == body.end() || !users->is_array()) {
    return fieldError("users", "missing or not an array");
  }
  for (size_t i = 0; i < users->size(); ++i) {
    auto user = decodeUser((*users)[i]);
    if (!user.ok()) {
      return fieldError(absl::StrCat("users[", i, "]"), user.status().message());
    }
    for (const User& other : c.users) {
      if (other.name == user->name) {
        return fieldError(absl::StrCat("users[", i, "]"),
                          absl::StrCat("duplicate name \"", user->name, "\""));
      }
    }
    c.users.push_back(*std::move(user));
  }
  if (auto keys = body.find("identity_keys"); keys != body.end()) {  // absent in older stores
    if (!keys->is_array()) {
      return fieldError("identity_keys", "not an array");
    }
    for (size_t i = 0; i < keys->size(); ++i) {
      auto key = decodeIdentityKey((*keys)[i]);
      if (!key.ok()) {
        return fieldError(absl::StrCat("identity_keys[", i, "]"), key.status().message());
      }
      for (const PortIdentityKey& other : c.identity_keys) {
        if (other.port == key->port && other.method == key->method) {
          return fieldError(absl::StrCat("identity_keys[", i, "]"), "a second key for its port");
        }
      }
      c.identity_keys.push_back(*std::move(key));
    }
  }
  return c;
}

// ENOENT -> nullopt. The store holds every user's key: a file of ours that group or others may
// read (copied in by hand, or restored from a backup) is made 0600, and `*warning` says so. A
// symbolic link or anything but a regular file is refused.
absl::StatusOr<std::optional<std::string>> readFile(const std::string& path,
                                                    std::string* warning) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) {
      return std::optional<std::string>();
    }
    return posixError("cannot open", path, errno);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  }
  if (st.st_uid == ::geteuid() && (st.st_mode & 077) != 0) {
    const bool fixed = ::fchmod(fd, 0600) == 0;
    absl::StrAppend(warning, warning->empty() ? "" : "; ", path, " was readable by group or others (mode ",
                    absl::StrFormat("%04o", st.st_mode & 07777), ")",
                    fixed ? ": made 0600" : ": could not make it 0600");
  }
  std::string text;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const int err = errno;
      ::close(fd);
      return posixError("cannot read", path, err);
    }
    if (n == 0) {
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return std::optional<std::string>(std::move(text));
}

#undef SR_ASSIGN_OR_RETURN

}  // namespace

std::string encodeUserText(const User& user) { return encodeUser(user).dump(); }

absl::StatusOr<User> decodeUserText(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("user: not JSON");
  }
  return decodeUser(j);
}

std::string encodeIdentityKeyText(const PortIdentityKey& key) {
  return encodeIdentityKey(key).dump();
}

absl::StatusOr<PortIdentityKey> decodeIdentityKeyText(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError("identity key: not JSON");
  }
  return decodeIdentityKey(j);
}

absl::StatusOr<std::string> encodeStore(const StoreContents& contents) {
  try {
    json body = json::object();
    body["generation"] = contents.generation;
    if (contents.default_method.has_value()) {
      body["default_method"] = *contents.default_method;
    }
    json users = json::array();
    for (const User& u : contents.users) {
      users.push_back(encodeUser(u));
    }
    body["users"] = std::move(users);
    if (!contents.identity_keys.empty()) {
      json keys = json::array();
      for (const PortIdentityKey& k : contents.identity_keys) {
        keys.push_back(encodeIdentityKey(k));
      }
      body["identity_keys"] = std::move(keys);
    }
    const std::string digest = sha256Hex(canonical(body));
    if (digest.empty()) {
      return absl::InternalError("SHA-256 failed");
    }
    json doc = json::object();
    doc["format"] = kFormat;
    doc["version"] = kVersion;
    doc["body"] = std::move(body);
    doc["sha256"] = digest;
    return doc.dump(2) + "\n";
  } catch (const json::exception& e) {
    // Only invalid UTF-8 in a string gets here; the message names no value.
    return absl::InvalidArgumentError(absl::StrCat("cannot encode the user store: ", e.what()));
  }
}

absl::StatusOr<StoreContents> decodeStore(absl::string_view text) {
  try {
    json doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      return absl::DataLossError("not valid JSON (torn or truncated write?)");
    }
    if (!doc.is_object()) {
      return absl::DataLossError("not a JSON object");
    }
    auto format = doc.find("format");
    if (format == doc.end() || !format->is_string() || format->get<std::string>() != kFormat) {
      return absl::DataLossError(absl::StrCat("format: not \"", kFormat, "\""));
    }
    auto version = doc.find("version");
    if (version == doc.end() || !version->is_number_integer() ||
        version->get<int64_t>() != kVersion) {
      return absl::DataLossError(absl::StrCat("version: not ", kVersion));
    }
    auto body = doc.find("body");
    auto digest = doc.find("sha256");
    if (body == doc.end() || !body->is_object()) {
      return absl::DataLossError("body: missing or not an object");
    }
    if (digest == doc.end() || !digest->is_string()) {
      return absl::DataLossError("sha256: missing");
    }
    if (sha256Hex(canonical(*body)) != digest->get<std::string>()) {
      return absl::DataLossError("sha256: checksum mismatch (the file was damaged or edited)");
    }
    auto contents = decodeBody(*body);
    if (!contents.ok()) {
      return absl::DataLossError(contents.status().message());
    }
    return contents;
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat("malformed: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<UserStore>> UserStore::open(const std::string& dir) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("state-dir: empty");
  }
  std::error_code ec;
  if (std::filesystem::create_directories(dir, ec)) {
    ::chmod(dir.c_str(), 0700);
  } else if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create state directory ", dir, ": ", ec.message()));
  }
  const std::string lock_path = absl::StrCat(dir, "/", kLockFileName);
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return posixError("cannot open", lock_path, errno);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("state directory ", dir, " is in use by another shadowrelay process (",
                       lock_path, " is locked)"));
    }
    return posixError("cannot lock", lock_path, err);
  }
  return std::unique_ptr<UserStore>(new UserStore(dir, fd));
}

UserStore::~UserStore() {
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);  // releases the flock
  }
}

std::string UserStore::file(absl::string_view name) const { return absl::StrCat(dir_, "/", name); }
std::string UserStore::path() const { return file(kFileName); }
std::string UserStore::previousPath() const { return file(kPreviousFileName); }

absl::StatusOr<UserStore::Loaded> UserStore::load() {
  const std::string main_path = path();
  const std::string prev_path = previousPath();
  std::string mode_warning;
  auto main_text = readFile(main_path, &mode_warning);
  if (!main_text.ok()) {
    return main_text.status();
  }
  std::string main_problem;
  if (main_text->has_value()) {
    auto contents = decodeStore(**main_text);
    if (contents.ok()) {
      loaded_ = true;
      main_is_good_ = true;
      generation_ = contents->generation;
      return Loaded{*std::move(contents), std::move(mode_warning)};
    }
    main_problem = std::string(contents.status().message());
  }
  auto prev_text = readFile(prev_path, &mode_warning);
  if (!prev_text.ok()) {
    return prev_text.status();
  }
  if (!main_text->has_value() && !prev_text->has_value()) {
    loaded_ = true;  // a first start: no users yet
    main_is_good_ = false;
    generation_ = 0;
    return Loaded{};
  }
  const std::string main_state =
      main_text->has_value() ? absl::StrCat("is not usable: ", main_problem) : "is missing";
  if (!prev_text->has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "user store ", main_path, " ", main_state, "; no previous generation ", prev_path,
        " to fall back to. Refusing to start with no users: restore the file or move it away"));
  }
  auto prev = decodeStore(**prev_text);
  if (!prev.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("user store ", main_path, " ", main_state, "; the previous generation ",
                     prev_path, " is not usable either: ", prev.status().message(),
                     ". Refusing to start with no users: restore a file or move them away"));
  }
  loaded_ = true;
  main_is_good_ = false;
  generation_ = prev->generation;
  std::string warning =
      absl::StrCat("user store ", main_path, " ", main_state, "; loaded the previous generation ",
                   prev_path, " (generation ", prev->generation, ")");
  if (!mode_warning.empty()) absl::StrAppend(&warning, "; ", mode_warning);
  return Loaded{*std::move(prev), std::move(warning)};
}

absl::Status UserStore::save(const StoreContents& contents) {
  if (!loaded_) {
    return absl::FailedPreconditionError("user store: save() before load()");
  }
  StoreContents next = contents;
  next.generation = generation_ + 1;
  auto text = encodeStore(next);
  if (!text.ok()) {
    return text.status();
  }
  const std::string main_path = path();
  const std::string prev_path = previousPath();
  // users.json.tmp (kTempFileName), removed on every early return below.
  auto staged = relay::StagedFile::write(main_path, *text, 0600);
  if (!staged.ok()) {
    return staged.status();
  }
  if (main_is_good_) {
    // Keep the current good generation as the previous one. users.json never disappears.
    if (::unlink(prev_path.c_str()) != 0 && errno != ENOENT) {
      return posixError("cannot remove", prev_path, errno);
    }
    if (::link(main_path.c_str(), prev_path.c_str()) != 0) {
      const int err = errno;
      if (err != EPERM && err != EXDEV && err != ENOTSUP && err != EOPNOTSUPP && err != EMLINK) {
        return posixError("cannot link " + main_path + " to", prev_path, err);
      }
      // No hard links on this file system: move it instead. A crash before the rename below
      // leaves only users.json.prev, which load() takes with a warning.
      if (::rename(main_path.c_str(), prev_path.c_str()) != 0) {
        return posixError("cannot rename " + main_path + " to", prev_path, errno);
      }
    }
  } else if (::access(main_path.c_str(), F_OK) == 0) {
    // users.json was bad when loaded: keep it aside for inspection, never as "previous".
    const std::string corrupt_path = file(kCorruptFileName);
    if (::rename(main_path.c_str(), corrupt_path.c_str()) != 0) {
      return posixError("cannot rename " + main_path + " to", corrupt_path, errno);
    }
  }
  absl::Status committed = staged->commit();
  if (staged->committed()) {  // renamed: only the directory fsync may have failed
    main_is_good_ = true;
    generation_ = next.generation;
  }
  return committed;
}

}  // namespace shadowrelay::api::users
