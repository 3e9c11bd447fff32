// SPDX-License-Identifier: Apache-2.0
#include "api/users/user_registry.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "crypto/method.h"
#include "relay/log.h"

namespace shadowrelay::api::users {
namespace {

absl::Status withUser(absl::string_view name, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("user \"", name, "\": ", s.message()));
}

/// A method by name; a legacy stream method only with --allow-insecure-ciphers.
absl::StatusOr<const crypto::MethodInfo*> methodOrInvalid(absl::string_view name,
                                                          bool allow_insecure) {
  auto method = crypto::findAnyMethod(name);
  if (!method.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("method: ", method.status().message()));
  }
  if (crypto::isStream(**method) && !allow_insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "method: ", (*method)->name,
        " is a legacy stream method without integrity protection (insecure); the server "
        "accepts it only with --allow-insecure-ciphers"));
  }
  return *method;
}

/// The method of a user of the registry (validated when its entry was made).
const crypto::MethodInfo& methodOf(const User& user) {
  return **crypto::findAnyMethod(user.method);
}

absl::string_view generationName(const crypto::MethodInfo& method) {
  switch (method.edition) {
    case crypto::Edition::Aead2022:
      return "Shadowsocks 2022";
    case crypto::Edition::Stream:
      return "legacy stream";
    case crypto::Edition::Aead2017:
      break;
  }
  return "AEAD-2017";
}

/// The user holding the server's -k/--key: on the shared port, and for a 2022 AES method the
/// port's identity key as soon as the port has other 2022 users.
bool holdsServerKey(const User& user) { return user.source == UserSource::Default; }

/// A 2022 AES user whose clients send an identity header (every one but the -k user).
bool sendsIdentity(const User& user) {
  return crypto::usesSeparateHeader(methodOf(user)) && !holdsServerKey(user);
}

/// A user's key; for a 2022 method (the PSK itself) errors name the field it came in.
absl::StatusOr<crypto::MasterKey> userKeyFor(const crypto::MethodInfo& method,
                                             const std::string& password, const std::string& key) {
  auto master = crypto::masterKeyFor(method, password, key);
  if (master.ok() || method.edition != crypto::Edition::Aead2022 ||
      password.empty() == key.empty()) {
    return master;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(password.empty() ? "key" : "password", ": ",
                   absl::StripPrefix(master.status().message(), "PSK: ")));
}

bool sameKey(const crypto::MasterKey& a, const crypto::MasterKey& b) {
  return std::equal(a.bytes().begin(), a.bytes().end(), b.bytes().begin(), b.bytes().end());
}

/// Which -k a note of the store means: hex BLAKE3(key)[0..16].
std::string keyHash(const crypto::MasterKey& key) {
  const crypto::UserHash hash = crypto::userHash(key.bytes());
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(hash.data()), hash.size()));
}

// A plugin stands in front of a dedicated port only (the shared port's is --plugin).
absl::Status checkPlugin(const User& u, const RegistryOptions& options) {
  if (u.plugin.empty()) {
    if (!u.plugin_opts.empty()) return absl::InvalidArgumentError("plugin_opts: needs a plugin");
    return absl::OkStatus();
  }
  if (u.port == 0) {
    return absl::InvalidArgumentError(
        "plugin: only a user on a dedicated port may have one (the shared port's is --plugin)");
  }
  if (!options.plugin_check) {
    return absl::InvalidArgumentError("plugin: this server runs no plugins for users");
  }
  if (absl::Status s = options.plugin_check(u.plugin); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("plugin: ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status readOnly(const User& u) {
  return absl::FailedPreconditionError(absl::StrCat(
      "user \"", u.name, "\" comes from the ",
      u.source == UserSource::Default ? "command line (-k/--key)" : "configuration file",
      " and is read-only through the API; change it there"));
}

}  // namespace

absl::Status UserRegistry::addEntry(State& state, User user) const {
  if (absl::Status s = validateUserName(user.name); !s.ok()) {
    return withUser(user.name, s);
  }
  if (state.users.count(user.name) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("user \"", user.name, "\" is defined twice"));
  }
  auto method = methodOrInvalid(user.method, options_.allow_insecure_ciphers);
  if (!method.ok()) {
    return withUser(user.name, method.status());
  }
  user.method = std::string((*method)->name);
  auto key = userKeyFor(**method, user.password, user.key);
  if (!key.ok()) {
    return withUser(user.name, key.status());
  }
  if (user.port == sharedPort()) {
    user.port = 0;
  }
  if (user.port != 0) {
    if (absl::Status s = checkPortLocked(user.port, user.name, state.users); !s.ok()) {
      return withUser(user.name, s);
    }
  }
  if (absl::Status s = checkPlugin(user, options_); !s.ok()) {
    return withUser(user.name, s);
  }
  if (absl::Status s =
          checkPortPeers(user.port, **method, *key, user.password.empty() ? "key" : "password",
                         user.name, state);
      !s.ok()) {
    return withUser(user.name, s);
  }
  // Kept (it comes from the store, the configuration or another server), but said: create()
  // and update() refuse this; here it was made elsewhere or before -u.
  if (absl::Status s = checkSharedPortUdp(user.port, **method); !s.ok()) {
    SR_LOG(Warn, "user \"%s\": %s; its UDP is not served", user.name, s.message());
  }
  Entry entry{std::move(user), *std::move(key)};
  std::string name = entry.user.name;
  state.users.emplace(std::move(name), std::move(entry));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<UserRegistry>> UserRegistry::open(RegistryOptions options) {
  auto default_method = methodOrInvalid(options.default_method, options.allow_insecure_ciphers);
  if (!default_method.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("default ", default_method.status().message()));
  }
  options.default_method = std::string((*default_method)->name);
  std::unique_ptr<UserRegistry> registry(new UserRegistry(std::move(options)));
  UserRegistry& r = *registry;
  absl::MutexLock write(&r.write_mu_);
  absl::MutexLock lock(&r.mu_);
  r.default_method_ = r.options_.default_method;
  State& state = r.state_;

  for (const User& configured : r.options_.configured_users) {
    User user = configured;
    if (user.source == UserSource::Api) {
      user.source = UserSource::Config;
    }
    if (user.created == absl::UnixEpoch()) {
      user.created = r.options_.now();
    }
    if (absl::Status s = r.addEntry(state, std::move(user)); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("configured users: ", s.message()));
    }
  }

  if (!r.options_.state_dir.empty()) {
    auto store = UserStore::open(r.options_.state_dir);
    if (!store.ok()) {
      return store.status();
    }
    r.store_ = *std::move(store);
  }
  // Where the API users come from: the shared store; the state directory's copy of it while
  // the shared store cannot be reached; or the state directory itself.
  StoreContents contents;
  std::string from;
  SharedStore* shared = r.options_.shared_store;
  absl::Status shared_status = absl::OkStatus();
  if (shared != nullptr) {
    auto loaded = shared->load();
    if (loaded.ok()) {
      contents = *std::move(loaded);
      from = shared->describe();
    } else {
      shared_status = loaded.status();
    }
  }
  if (r.store_ != nullptr) {
    auto loaded = r.store_->load();
    if (!loaded.ok()) {
      if (shared == nullptr || !shared_status.ok()) return loaded.status();
      // Only a cache: etcd has the users. It is written again at the next change.
      SR_LOG(Warn, "user store cache: %s", loaded.status().message());
    } else {
      if (!loaded->warning.empty()) {
        SR_LOG(Warn, "%s", loaded->warning);
      }
      if (shared == nullptr || !shared_status.ok()) {
        contents = std::move(loaded->contents);
        from = absl::StrCat(r.store_->path(), " (generation ", r.store_->generation(), ")");
      }
    }
  }
  if (!shared_status.ok()) {
    SR_LOG(Warn, "user store %s: %s; serving %s until it answers", shared->describe(),
           shared_status.message(),
           r.store_ != nullptr ? absl::StrCat("the users cached in ", r.store_->path())
                               : std::string("no API users (no --state-dir cache)"));
  }
  for (PortIdentityKey& key : contents.identity_keys) {
    std::pair<uint16_t, std::string> id(key.port, key.method);
    state.identity_keys.emplace(std::move(id), std::move(key));
  }
  for (User& user : contents.users) {
    user.source = UserSource::Api;
    if (shared != nullptr) {
      SplitTraffic& split = r.split_traffic_[user.name];
      split.remote = user.traffic;
      // A user from the --state-dir cache (etcd down) has its period's bytes; one from etcd
      // has none, and the store gives the others' bytes once started.
      if (user.quota_period_start.has_value()) {
        split.remote_periods = {{*user.quota_period_start, user.quotaUsedBytes()}};
      }
    }
    if (absl::Status s = r.addEntry(state, std::move(user)); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "user store ", from, ": ", s.message(),
          " (a user of the store clashes with the configuration: remove one of them)"));
    }
  }
  if (contents.default_method.has_value()) {
    state.persisted_default = contents.default_method;
    if (!r.options_.default_method_given) {
      r.default_method_ = *contents.default_method;
    } else if (*contents.default_method != r.default_method_) {
      SR_LOG(Info, "default method %s (given) instead of %s (stored by SetDefaults)",
             r.default_method_, *contents.default_method);
    }
  }
  if (!from.empty()) {
    SR_LOG(Info, "user store %s: %d API users", from, contents.users.size());
  }
  if (shared != nullptr && shared_status.ok() && r.store_ != nullptr) {
    // What a start while etcd is down serves.
    if (absl::Status s = r.store_->save(contentsOf(state)); !s.ok()) {
      SR_LOG(Warn, "user store cache: %s", s.message());
    }
  }
  // Identity keys the users need and the store lacks are made now and kept before any client
  // can be given them.
  if (r.updateIdentityKeys(state)) {
    if (absl::Status s = r.persist(state); !s.ok()) {
      if (shared == nullptr || shared_status.ok()) {
        return s;
      }
      SR_LOG(Warn, "identity keys kept in memory only until the user store answers: %s",
             s.message());
    }
  }
  for (const auto& [port, method] : r.identityPorts(state)) {
    const bool server_key = state.identity_keys.at({port, std::string(method->name)}).key.empty();
    SR_LOG(Info, "port %d: %s users send identity headers (SIP023); the identity key is %s",
           port == 0 ? r.sharedPort() : port, method->name,
           server_key ? "-k, which alone no longer connects there" : "kept in the user store");
  }
  // Periods that began while the server was down start now.
  const absl::Time now = r.options_.now();
  for (auto& [name, entry] : state.users) {
    if (entry.user.rollQuotaPeriod(now) && entry.user.source == UserSource::Api) {
      r.traffic_dirty_ = true;
    }
  }
  if (shared != nullptr) r.sharedQuotasLocked();
  r.snapshot_ = r.buildSnapshotLocked();
  return registry;
}

UserRegistry::~UserRegistry() {
  if (absl::Status s = flush(); !s.ok()) {
    SR_LOG(Warn, "user store: traffic counters not saved: %s", s.message());
  }
}

absl::Status UserRegistry::checkPortLocked(uint16_t port, absl::string_view name,
                                           const Table& table) const {
  if (port == sharedPort()) {
    return absl::OkStatus();
  }
  if (std::find(options_.reserved_ports.begin(), options_.reserved_ports.end(), port) !=
      options_.reserved_ports.end()) {
    return absl::FailedPreconditionError(absl::StrCat("port ", port, " is used by the server"));
  }
  for (const auto& [other_name, entry] : table) {
    if (entry.user.port == port && other_name != name) {
      return absl::FailedPreconditionError(
          absl::StrCat("port ", port, " is already used by user \"", other_name, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status UserRegistry::checkSharedPortUdp(uint16_t port,
                                              const crypto::MethodInfo& method) const {
  if (port != 0 || options_.shared_port_udp_method.empty()) return absl::OkStatus();
  auto udp = crypto::findAnyMethod(options_.shared_port_udp_method);
  if (!udp.ok()) return absl::OkStatus();
  const bool udp2022 = (*udp)->edition == crypto::Edition::Aead2022;
  if (udp2022 == (method.edition == crypto::Edition::Aead2022)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "port ", sharedPort(), " serves UDP (-u) for ", udp2022 ? "Shadowsocks 2022" : "AEAD-2017",
      " users (the method the server started with, ", (*udp)->name, "); a user of ",
      generationName(method),
      " needs another port: give it a port of its own"));
}

absl::Status UserRegistry::checkPortPeers(uint16_t port, const crypto::MethodInfo& method,
                                          const crypto::MasterKey& key, absl::string_view key_field,
                                          absl::string_view name, const State& state) const {
  const uint16_t shown = port == 0 ? sharedPort() : port;
  for (const auto& [other_name, entry] : state.users) {
    if (entry.user.port != port || other_name == name) {
      continue;
    }
    const crypto::MethodInfo& other = methodOf(entry.user);
    if (crypto::isStream(method) || crypto::isStream(other)) {
      // Nothing authenticates a stream method, so nothing tells two users' keys apart.
      const crypto::MethodInfo& stream = crypto::isStream(method) ? method : other;
      return absl::FailedPreconditionError(absl::StrCat(
          "port ", shown, " has user \"", other_name, "\" (", other.name, "); ", stream.name,
          " is a legacy stream method without authentication, so a port with it serves one "
          "user (no trial decryption): give the user a port of its own"));
    }
    if (other.edition != method.edition) {
      return absl::FailedPreconditionError(
          absl::StrCat("port ", shown, " serves ", generationName(other), " users (user \"",
                       other_name, "\", ", other.name, "); a user of ", generationName(method),
                       " needs another port: give it a port of its own"));
    }
    if (method.edition != crypto::Edition::Aead2022) {
      continue;
    }
    if (!crypto::usesSeparateHeader(method)) {
      constexpr absl::string_view kUseAes =
          "; use 2022-blake3-aes-128-gcm or 2022-blake3-aes-256-gcm for several users on a port, "
          "or give the user a port of its own";
      return absl::FailedPreconditionError(
          absl::StrCat(method.name, " has no identity headers (SIP023), so a port with it serves ",
                       "one user, and port ", shown, " has user \"", other_name, "\"", kUseAes));
    }
    if (&other != &method) {
      return absl::FailedPreconditionError(absl::StrCat(
          "port ", shown, " serves ", other.name, " (user \"", other_name,
          "\"): one 2022 method per port (its salt and identity key sizes depend on it); use ",
          other.name, " or give the user a port of its own"));
    }
    if (sameKey(entry.key, key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(key_field, ": user \"", other_name, "\" of port ", shown, " has this key",
                       holdsServerKey(entry.user) ? " (it is the port's identity key, -k)" : "",
                       "; each 2022 user needs a key of its own"));
    }
  }
  if (crypto::usesSeparateHeader(method)) {
    auto it = state.identity_keys.find({port, std::string(method.name)});
    if (it != state.identity_keys.end() && !it->second.key.empty()) {
      auto ipsk = crypto::decodePsk(it->second.key, method);
      if (ipsk.ok() && sameKey(*ipsk, key)) {
        return absl::InvalidArgumentError(absl::StrCat(key_field, ": is the identity key of port ",
                                                       shown, "; a user needs a key of its own"));
      }
    }
  }
  return absl::OkStatus();
}

std::map<uint16_t, const crypto::MethodInfo*> UserRegistry::identityPorts(
    const State& state) const {
  std::map<uint16_t, const crypto::MethodInfo*> ports;
  for (const auto& [name, entry] : state.users) {
    if (sendsIdentity(entry.user)) {
      ports.emplace(entry.user.port, &methodOf(entry.user));
    }
  }
  // -k once noted as the shared port's identity key stays that, even with no users left.
  auto holder = state.users.find("default");
  if (holder != state.users.end() && holdsServerKey(holder->second.user) &&
      crypto::usesSeparateHeader(methodOf(holder->second.user))) {
    auto note = state.identity_keys.find({0, holder->second.user.method});
    if (note != state.identity_keys.end() && note->second.key.empty() &&
        note->second.key_hash == keyHash(holder->second.key)) {
      ports.emplace(0, &methodOf(holder->second.user));
    }
  }
  return ports;
}

std::string UserRegistry::identityKeyText(uint16_t port, const crypto::MethodInfo& method,
                                          const State& state) const {
  if (port == 0) {
    auto holder = state.users.find("default");
    if (holder != state.users.end() && holdsServerKey(holder->second.user) &&
        &methodOf(holder->second.user) == &method) {
      const User& user = holder->second.user;
      return user.password.empty() ? user.key : user.password;
    }
  }
  auto it = state.identity_keys.find({port, std::string(method.name)});
  return it == state.identity_keys.end() ? std::string() : it->second.key;
}

bool UserRegistry::updateIdentityKeys(State& state) const {
  const std::map<uint16_t, const crypto::MethodInfo*> ports = identityPorts(state);
  bool changed = false;
  // Generated keys of ports that no longer need one go; notes of -k stay (see identityPorts).
  for (auto it = state.identity_keys.begin(); it != state.identity_keys.end();) {
    auto port = ports.find(it->first.first);
    if (!it->second.key.empty() &&
        (port == ports.end() || port->second->name != it->first.second)) {
      it = state.identity_keys.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  auto holder = state.users.find("default");
  for (const auto& [port, method] : ports) {
    std::pair<uint16_t, std::string> id(port, std::string(method->name));
    PortIdentityKey wanted;
    wanted.port = port;
    wanted.method = id.second;
    if (port == 0 && holder != state.users.end() && holdsServerKey(holder->second.user) &&
        &methodOf(holder->second.user) == method) {
      wanted.key_hash = keyHash(holder->second.key);  // -k is the key: note which one
    } else {
      auto it = state.identity_keys.find(id);
      if (it != state.identity_keys.end() && !it->second.key.empty()) {
        continue;  // generated earlier: kept for good, clients have it
      }
      wanted.key = crypto::randomBase64Key(method->key_size);
    }
    auto [it, inserted] = state.identity_keys.try_emplace(id, wanted);
    if (inserted || it->second != wanted) {
      it->second = std::move(wanted);
      changed = true;
    }
  }
  return changed;
}

bool UserRegistry::mergeTrafficLocked(Table& table) const {
  bool newer = false;
  for (auto& [name, entry] : table) {
    auto current = state_.users.find(name);
    if (current == state_.users.end()) continue;
    const User& now = current->second.user;
    if (now.traffic != entry.user.traffic) {
      entry.user.traffic = now.traffic;
      newer = newer || entry.user.source == UserSource::Api;
    }
    if (now.first_use.has_value() && !entry.user.first_use.has_value()) {
      entry.user.first_use = now.first_use;
      newer = newer || entry.user.source == UserSource::Api;
    }
  }
  return newer;
}

void UserRegistry::sharedQuotaLocked(User& u) {
  SplitTraffic& split = split_traffic_[u.name];
  if (u.quota_period_start != split.period_start) {
    // A period begins here (a boundary, a new setting, a new user or this server's start):
    // this server's bytes in it count from now.
    split.period_start = u.quota_period_start;
    split.local_period_base = split.local.totalBytes();
    options_.shared_store->startPeriod(u.name, u.quota_period_start);
  }
  if (!u.quota_period_start.has_value()) return;  // no period: the quota counts everything
  const uint64_t local = split.local.totalBytes();
  uint64_t used = local > split.local_period_base ? local - split.local_period_base : 0;
  for (const auto& [start, bytes] : split.remote_periods) {
    if (start == *u.quota_period_start) used += bytes;
  }
  const uint64_t total = u.traffic.totalBytes();
  u.quota_base_bytes = total > used ? total - used : 0;
}

void UserRegistry::sharedQuotasLocked() {
  for (auto& [name, entry] : state_.users) {
    if (entry.user.source == UserSource::Api) sharedQuotaLocked(entry.user);
  }
}

relay::UserTablePtr UserRegistry::buildSnapshotLocked() {
  const absl::Time now = options_.now();
  next_deadline_ = absl::InfiniteFuture();
  std::vector<relay::RelayUser> users;
  users.reserve(state_.users.size());
  for (const auto& [name, entry] : state_.users) {
    const User& u = entry.user;
    const absl::Time expiry = u.expiry();
    if (expiry > now) next_deadline_ = std::min(next_deadline_, expiry);
    // A boundary already passed (not rolled yet) is due at once.
    next_deadline_ = std::min(next_deadline_, u.quotaResetTime());
    relay::RelayUser r;
    r.name = u.name;
    r.method = *crypto::findAnyMethod(u.method);  // validated when the entry was made
    r.provider = options_.providers != nullptr ? &options_.providers->providerFor(*r.method)
                                               : nullptr;
    r.key = entry.key;
    r.port = u.port;
    r.enabled = u.enabled;
    r.quota_exceeded = u.quotaExceeded();
    r.expired = u.expiredAt(now);
    r.max_connections = u.limits.max_connections;
    r.max_devices = u.limits.max_devices;
    r.device_window = options_.device_window;
    r.bytes_per_second = u.limits.bytes_per_second != 0 ? u.limits.bytes_per_second
                                                         : options_.default_bytes_per_second;
    r.plugin = u.plugin;
    r.plugin_opts = u.plugin_opts;
    users.push_back(std::move(r));
  }
  std::vector<relay::IdentityKey> identity_keys;
  for (const auto& [port, method] : identityPorts(state_)) {
    auto ipsk = crypto::decodePsk(identityKeyText(port, *method, state_), *method);
    if (!ipsk.ok()) {
      continue;  // cannot happen: -k and generated keys were validated
    }
    relay::IdentityKey key;
    key.port = port;
    key.method = method;
    key.provider =
        options_.providers != nullptr ? &options_.providers->providerFor(*method) : nullptr;
    key.key = *std::move(ipsk);
    identity_keys.push_back(std::move(key));
  }
  // Users also in the current table keep its UserLive (their open connection count).
  auto table = std::make_shared<const relay::UserTable>(++snapshot_generation_, std::move(users),
                                                        snapshot_.get(), std::move(identity_keys));
  for (const auto& [name, live] : remote_live_) {
    const relay::RelayUser* user = table->find(name);
    if (user == nullptr) continue;
    const relay::RelayUser* before = snapshot_ != nullptr ? snapshot_->find(name) : nullptr;
    if (before == nullptr || before->live != user->live) setRemoteLiveLocked(*user, live);
  }
  return table;
}

void UserRegistry::setRemoteLiveLocked(const relay::RelayUser& user, const LiveCount& live) const {
  user.live->remote_tcp_sessions.store(live.connections, std::memory_order_relaxed);
  user.live->devices->setRemote(
      device_ids_, absl::flat_hash_set<std::string>(live.devices.begin(), live.devices.end()));
}

void UserRegistry::republish() {
  absl::MutexLock write(&write_mu_);
  relay::UserTablePtr snapshot;
  {
    absl::MutexLock lock(&mu_);
    snapshot_ = buildSnapshotLocked();
    snapshot = snapshot_;
  }
  publish(snapshot);
}

void UserRegistry::publish(const relay::UserTablePtr& snapshot) {
  for (const auto& [id, subscriber] : subscribers_) {
    subscriber(snapshot);
  }
}

StoreContents UserRegistry::contentsOf(const State& state) {
  StoreContents contents;
  contents.default_method = state.persisted_default;
  for (const auto& [name, entry] : state.users) {
    if (entry.user.source == UserSource::Api) {
      contents.users.push_back(entry.user);
    }
  }
  for (const auto& [id, key] : state.identity_keys) {
    contents.identity_keys.push_back(key);
  }
  return contents;
}

absl::Status UserRegistry::persist(const State& state) {
  if (store_ == nullptr && options_.shared_store == nullptr) {
    return absl::OkStatus();
  }
  const StoreContents contents = contentsOf(state);
  if (options_.shared_store != nullptr) {
    if (absl::Status s = options_.shared_store->write(contents); !s.ok()) {
      if (s.code() != absl::StatusCode::kAborted) {
        SR_LOG(Warn, "user store %s: %s", options_.shared_store->describe(), s.message());
      }
      return s;
    }
    if (store_ != nullptr) {  // only a cache now: the change has been made
      if (absl::Status s = store_->save(contents); !s.ok()) {
        SR_LOG(Warn, "user store cache: %s", s.message());
      }
    }
    return absl::OkStatus();
  }
  if (absl::Status s = store_->save(contents); !s.ok()) {
    SR_LOG(Error, "user store: %s", s.message());
    return absl::InternalError(absl::StrCat("the user store could not be written: ", s.message()));
  }
  return absl::OkStatus();
}

namespace {
const absl::Status& statusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status statusOf(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace

template <typename Result, typename Change>
Result UserRegistry::retryShared(Change change) {
  constexpr int kAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    Result result = change();
    if (options_.shared_store == nullptr || attempt == kAttempts ||
        statusOf(result).code() != absl::StatusCode::kAborted) {
      return result;
    }
    // Another server changed the store first: hear its change, then decide again (a create of
    // the same name now answers ALREADY_EXISTS).
    if (absl::Status s = options_.shared_store->catchUp(absl::Seconds(2)); !s.ok()) {
      return s;
    }
  }
}

absl::StatusOr<User> UserRegistry::create(const NewUser& request) {
  return retryShared<absl::StatusOr<User>>([&] { return createOnce(request); });
}

absl::StatusOr<User> UserRegistry::update(absl::string_view name, const UserUpdate& update) {
  return retryShared<absl::StatusOr<User>>([&] { return updateOnce(name, update); });
}

absl::Status UserRegistry::remove(absl::string_view name) {
  return retryShared<absl::Status>([&] { return removeOnce(name); });
}

absl::StatusOr<std::string> UserRegistry::setDefaultMethod(absl::string_view method) {
  return retryShared<absl::StatusOr<std::string>>([&] { return setDefaultMethodOnce(method); });
}

namespace {
/// Whether two users differ only in what the shared store does not hold (traffic, source,
/// the quota period's start and base).
bool sameStoredUser(User a, User b) {
  a.traffic = b.traffic = TrafficCounters{};
  a.source = b.source = UserSource::Api;
  a.quota_period_start = b.quota_period_start = std::nullopt;
  a.quota_base_bytes = b.quota_base_bytes = 0;
  return a == b;
}
}  // namespace

void UserRegistry::applyShared(absl::FunctionRef<StoreContents()> read) {
  absl::MutexLock write(&write_mu_);
  StoreContents contents = read();
  relay::UserTablePtr snapshot;
  {
    absl::MutexLock lock(&mu_);
    State state;
    state.persisted_default = contents.default_method;
    for (PortIdentityKey& key : contents.identity_keys) {
      std::pair<uint16_t, std::string> id(key.port, key.method);
      state.identity_keys.emplace(std::move(id), std::move(key));
    }
    for (const auto& [name, entry] : state_.users) {
      if (entry.user.source != UserSource::Api) state.users.emplace(name, entry);
    }
    bool changed = state.persisted_default != state_.persisted_default ||
                   state.identity_keys != state_.identity_keys;
    size_t api_users = 0;
    for (User& user : contents.users) {
      user.source = UserSource::Api;
      auto current = state_.users.find(user.name);
      if (current != state_.users.end() && current->second.user.source == UserSource::Api &&
          current->second.user.created != user.created) {
        // Deleted and made again while this server was not listening (one watch batch, or a
        // re-list): another user, whose counting starts afresh here.
        split_traffic_.erase(user.name);
        current = state_.users.end();
      }
      if (current != state_.users.end() && current->second.user.source == UserSource::Api) {
        const User& mine = current->second.user;
        user.traffic = mine.traffic;
        // This server's period; rolled below if the change set another period.
        user.quota_period_start = mine.quota_period_start;
        user.quota_base_bytes = mine.quota_base_bytes;
        // A first use this server saw and has not written yet stays.
        if (mine.first_use.has_value() &&
            (!user.first_use.has_value() || *mine.first_use < *user.first_use)) {
          user.first_use = mine.first_use;  // the earliest any server saw
        }
        if (sameStoredUser(user, mine)) {
          state.users.emplace(user.name, current->second);
          ++api_users;
          continue;
        }
      }
      changed = true;
      const std::string name = user.name;
      if (current == state_.users.end()) {
        user.traffic = split_traffic_[name].remote;  // counted elsewhere before it got here
      }
      user.rollQuotaPeriod(options_.now());  // a new user's period, or a new period setting
      if (absl::Status s = addEntry(state, std::move(user)); !s.ok()) {
        // Another server accepted it, so it can only clash with this server's configuration.
        SR_LOG(Warn, "user store %s: user \"%s\" not served here: %s",
               options_.shared_store != nullptr ? options_.shared_store->describe() : "",
               name, s.message());
        continue;
      }
      ++api_users;
    }
    for (const auto& [name, entry] : state_.users) {
      if (entry.user.source == UserSource::Api && state.users.count(name) == 0) {
        changed = true;
        split_traffic_.erase(name);
        SR_LOG(Info, "user \"%s\" deleted by another server; its sessions are closed", name);
      }
    }
    if (!changed) return;
    if (state.persisted_default.has_value() && !options_.default_method_given) {
      default_method_ = *state.persisted_default;
    }
    state_ = std::move(state);
    sharedQuotasLocked();
    snapshot_ = buildSnapshotLocked();
    snapshot = snapshot_;
    // The --state-dir cache is written by the next flush() (every 30 s and at stop), not at
    // every change another server makes.
    traffic_dirty_ = true;
    SR_LOG(Info, "user store: %d API users after a change by another server", api_users);
  }
  publish(snapshot);
}

void UserRegistry::applyRemoteTraffic(std::span<const TrafficTotal> totals) {
  bool quota_changed = false;
  {
    absl::MutexLock lock(&mu_);
    for (const TrafficTotal& t : totals) {
      SplitTraffic& split = split_traffic_[t.name];
      split.remote = t.total;
      split.remote_periods = t.period_bytes;
      auto it = state_.users.find(t.name);
      if (it == state_.users.end() || it->second.user.source != UserSource::Api) continue;
      User& u = it->second.user;
      const bool before = u.quotaExceeded();
      u.traffic = split.remote;
      u.traffic += split.local;
      sharedQuotaLocked(u);
      quota_changed = quota_changed || before != u.quotaExceeded();
      if (t.first_use.has_value() && (!u.first_use.has_value() || *t.first_use < *u.first_use)) {
        // Another server saw the user first: an expire_after_first_use runs from then.
        u.first_use = t.first_use;
        quota_changed = quota_changed || u.limits.expire_after_first_use > absl::ZeroDuration();
      }
    }
  }
  if (quota_changed) republish();
}

void UserRegistry::applyDeviceKey(const std::string& secret) {
  absl::MutexLock lock(&mu_);
  device_ids_ = relay::DeviceIds::fromSecret(secret);
  // The trackers compare by the new ids from now on.
  for (const auto& [name, live] : remote_live_) {
    if (const relay::RelayUser* user = snapshot_->find(name)) setRemoteLiveLocked(*user, live);
  }
}

void UserRegistry::applyRemoteLive(std::span<const LiveCount> totals) {
  absl::MutexLock lock(&mu_);
  for (const LiveCount& t : totals) {
    if (t.connections == 0 && t.devices.empty()) {
      if (auto it = remote_live_.find(t.name); it != remote_live_.end()) remote_live_.erase(it);
    } else {
      remote_live_[t.name] = t;
    }
    if (const relay::RelayUser* user = snapshot_->find(t.name)) setRemoteLiveLocked(*user, t);
  }
}

std::vector<LiveCount> UserRegistry::liveCounts() const {
  relay::UserTablePtr table;
  relay::DeviceIdsPtr ids;
  {
    absl::ReaderMutexLock lock(&mu_);
    table = snapshot_;
    ids = device_ids_;
  }
  std::vector<LiveCount> out;
  table->forEach([&](const relay::RelayUser& user) {
    if (user.max_connections == 0 && user.max_devices == 0) return;
    LiveCount live;
    live.name = user.name;
    live.connections = user.live->tcp_sessions.load(std::memory_order_relaxed);
    live.devices = user.live->devices->ids(ids, user.device_window);
    if (live.connections != 0 || !live.devices.empty()) out.push_back(std::move(live));
  });
  std::sort(out.begin(), out.end(),
            [](const LiveCount& a, const LiveCount& b) { return a.name < b.name; });
  return out;
}

relay::DeviceIdsPtr UserRegistry::deviceIds() const {
  absl::ReaderMutexLock lock(&mu_);
  return device_ids_;
}

absl::Status UserRegistry::commit(State state, bool publish_snapshot) {
  if (absl::Status s = persist(state); !s.ok()) {
    return s;
  }
  relay::UserTablePtr snapshot;
  {
    absl::MutexLock lock(&mu_);
    // addTraffic() may have counted since `state` was copied: keep the newer counters, and
    // stay dirty if they are newer than what was just written.
    traffic_dirty_ = mergeTrafficLocked(state.users);
    if (state.persisted_default.has_value()) {
      default_method_ = *state.persisted_default;
    }
    state_ = std::move(state);
    if (options_.shared_store != nullptr) sharedQuotasLocked();
    if (publish_snapshot) {
      snapshot_ = buildSnapshotLocked();
      snapshot = snapshot_;
    }
  }
  if (snapshot != nullptr) {
    publish(snapshot);
  }
  return absl::OkStatus();
}

absl::StatusOr<User> UserRegistry::createOnce(const NewUser& request) {
  if (absl::Status s = validateUserName(request.name); !s.ok()) {
    return s;
  }
  absl::MutexLock write(&write_mu_);
  State state;
  std::string default_method;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (state_.users.count(request.name) != 0) {
      return absl::AlreadyExistsError(absl::StrCat("user \"", request.name, "\" already exists"));
    }
    default_method = default_method_;
  }
  auto method = methodOrInvalid(request.method.empty() ? default_method : request.method,
                                options_.allow_insecure_ciphers);
  if (!method.ok()) {
    return method.status();
  }
  User user;
  user.name = request.name;
  user.method = std::string((*method)->name);
  user.password = request.password;
  user.key = request.key;
  if (user.password.empty() && user.key.empty()) {
    // A random password of the key size; for a 2022 method that is the PSK itself.
    user.password = crypto::randomBase64Key((*method)->key_size);
  }
  auto key = userKeyFor(**method, user.password, user.key);
  if (!key.ok()) {
    return absl::InvalidArgumentError(key.status().message());
  }
  user.port = request.port == sharedPort() ? 0 : request.port;
  user.enabled = request.enabled;
  user.limits = request.limits;
  user.plugin = request.plugin;
  user.plugin_opts = request.plugin_opts;
  if (absl::Status s = checkPlugin(user, options_); !s.ok()) {
    return s;
  }
  user.created = options_.now();
  user.source = UserSource::Api;
  user.expire_time = request.expire_time;
  user.rollQuotaPeriod(user.created);
  {
    absl::ReaderMutexLock lock(&mu_);
    if (options_.max_users != 0 && state_.users.size() >= options_.max_users) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the server has ", state_.users.size(), " users, its limit (--max-users ",
                       options_.max_users, ", configured users included): delete one first"));
    }
    if (user.port != 0) {
      if (absl::Status s = checkPortLocked(user.port, user.name, state_.users); !s.ok()) {
        return s;
      }
    }
    state = state_;
  }
  if (absl::Status s = checkSharedPortUdp(user.port, **method); !s.ok()) {
    return s;
  }
  if (absl::Status s = checkPortPeers(user.port, **method, *key,
                                      user.password.empty() ? "key" : "password", user.name, state);
      !s.ok()) {
    return s;
  }
  if (user.port != 0 && options_.port_check) {
    if (absl::Status s = options_.port_check(user.port); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("port ", user.port, ": ", s.message()));
    }
  }
  state.users.emplace(user.name, Entry{user, *std::move(key)});
  updateIdentityKeys(state);
  if (absl::Status s = commit(std::move(state), true); !s.ok()) {
    return s;
  }
  SR_LOG(Info, "control: user \"%s\" created (method %s, %s)", user.name, user.method,
         user.port == 0 ? std::string("shared port") : absl::StrCat("port ", user.port));
  return user;
}

absl::StatusOr<User> UserRegistry::get(absl::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = state_.users.find(name);
  if (it == state_.users.end()) {
    return absl::NotFoundError(absl::StrCat("no user \"", name, "\""));
  }
  return it->second.user;
}

std::vector<User> UserRegistry::list() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<User> out;
  out.reserve(state_.users.size());
  for (const auto& [name, entry] : state_.users) {
    out.push_back(entry.user);
  }
  return out;
}

size_t UserRegistry::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return state_.users.size();
}

absl::Status UserRegistry::copyForChange(absl::string_view name, State* state) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = state_.users.find(name);
  if (it == state_.users.end()) {
    return absl::NotFoundError(absl::StrCat("no user \"", name, "\""));
  }
  if (it->second.user.source != UserSource::Api) {
    return readOnly(it->second.user);
  }
  *state = state_;
  return absl::OkStatus();
}

absl::StatusOr<User> UserRegistry::updateOnce(absl::string_view name,
                                              const UserUpdate& update) {
  absl::MutexLock write(&write_mu_);
  State state;
  if (absl::Status s = copyForChange(name, &state); !s.ok()) {
    return s;
  }
  Entry& entry = state.users.find(name)->second;
  User user = entry.user;
  if (update.method.has_value()) {
    auto method = methodOrInvalid(*update.method, options_.allow_insecure_ciphers);
    if (!method.ok()) {
      return method.status();
    }
    user.method = std::string((*method)->name);
  }
  const crypto::MethodInfo* method = *crypto::findAnyMethod(user.method);
  const bool new_key = update.key.has_value() && !update.key->empty();
  if (new_key) {
    if (update.password.has_value() && !update.password->empty()) {
      return absl::InvalidArgumentError("password and key: give one, not both");
    }
    user.key = *update.key;
    user.password.clear();
  } else if (update.password.has_value() || update.key.has_value()) {
    user.key.clear();
    user.password = update.password.value_or("");
    if (user.password.empty()) {
      user.password = crypto::randomBase64Key(method->key_size);
    }
  }
  auto key = userKeyFor(*method, user.password, user.key);
  if (!key.ok()) {
    return absl::InvalidArgumentError(key.status().message());
  }
  if (absl::Status s = checkSharedPortUdp(user.port, *method); !s.ok()) {
    return s;
  }
  if (absl::Status s = checkPortPeers(user.port, *method, *key,
                                      user.password.empty() ? "key" : "password", user.name, state);
      !s.ok()) {
    return s;
  }
  if (update.enabled.has_value()) {
    user.enabled = *update.enabled;
  }
  if (update.max_connections.has_value()) {
    user.limits.max_connections = *update.max_connections;
  }
  if (update.data_quota_bytes.has_value()) {
    user.limits.data_quota_bytes = *update.data_quota_bytes;
  }
  if (update.expire_time.has_value()) {
    user.expire_time = *update.expire_time;
  }
  if (update.expire_after_first_use.has_value()) {
    if (*update.expire_after_first_use < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("limits.expire_after_first_use: must not be negative");
    }
    user.limits.expire_after_first_use = *update.expire_after_first_use;
  }
  if (update.data_quota_period.has_value()) {
    user.limits.data_quota_period = *update.data_quota_period;
  }
  // A new period setting counts from now (None: since creation again).
  user.rollQuotaPeriod(options_.now());
  if (update.max_devices.has_value()) {
    user.limits.max_devices = *update.max_devices;
  }
  if (update.bytes_per_second.has_value()) {
    user.limits.bytes_per_second = *update.bytes_per_second;
  }
  if (update.plugin.has_value()) {
    user.plugin = *update.plugin;
    if (user.plugin.empty()) user.plugin_opts.clear();
  }
  if (update.plugin_opts.has_value()) {
    user.plugin_opts = *update.plugin_opts;
  }
  if ((update.plugin.has_value() || update.plugin_opts.has_value()) &&
      (user.plugin != entry.user.plugin || user.plugin_opts != entry.user.plugin_opts)) {
    if (absl::Status s = checkPlugin(user, options_); !s.ok()) {
      return s;
    }
  }
  if (user == entry.user) {
    return user;  // nothing changed: no write, no new snapshot
  }
  entry.user = user;
  entry.key = *std::move(key);
  updateIdentityKeys(state);
  if (absl::Status s = commit(std::move(state), true); !s.ok()) {
    return s;
  }
  SR_LOG(Info, "control: user \"%s\" updated (method %s, %s%s)", user.name, user.method,
         user.enabled ? "enabled" : "disabled",
         update.password.has_value() || update.key.has_value() ? ", secret rotated" : "");
  return user;
}

absl::Status UserRegistry::removeOnce(absl::string_view name) {
  absl::MutexLock write(&write_mu_);
  State state;
  if (absl::Status s = copyForChange(name, &state); !s.ok()) {
    return s;
  }
  state.users.erase(state.users.find(name));
  updateIdentityKeys(state);
  if (absl::Status s = commit(std::move(state), true); !s.ok()) {
    return s;
  }
  {
    absl::MutexLock lock(&mu_);
    if (auto it = split_traffic_.find(name); it != split_traffic_.end()) split_traffic_.erase(it);
  }
  SR_LOG(Info, "control: user \"%s\" deleted", std::string(name));
  return absl::OkStatus();
}

std::vector<std::string> UserRegistry::insecureMethodsInUse() const {
  std::vector<std::string> methods;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [name, entry] : state_.users) {
    if (crypto::isStream(methodOf(entry.user))) methods.push_back(entry.user.method);
  }
  std::sort(methods.begin(), methods.end());
  methods.erase(std::unique(methods.begin(), methods.end()), methods.end());
  return methods;
}

std::string UserRegistry::defaultMethod() const {
  absl::ReaderMutexLock lock(&mu_);
  return default_method_;
}

absl::StatusOr<std::string> UserRegistry::setDefaultMethodOnce(absl::string_view name) {
  auto method = methodOrInvalid(name, options_.allow_insecure_ciphers);
  if (!method.ok()) {
    return method.status();
  }
  std::string canonical((*method)->name);
  absl::MutexLock write(&write_mu_);
  State state;
  {
    absl::ReaderMutexLock lock(&mu_);
    state = state_;
  }
  state.persisted_default = canonical;
  if (absl::Status s = commit(std::move(state), false); !s.ok()) {
    return s;
  }
  SR_LOG(Info, "control: default method set to %s", canonical);
  return canonical;
}

void UserRegistry::addTraffic(std::span<const TrafficDelta> deltas) {
  bool quota_changed = false;
  bool first_use_saved = false;  // an API user's first use: written at once
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = options_.now();
    for (const TrafficDelta& d : deltas) {
      auto it = state_.users.find(d.name);
      if (it == state_.users.end()) {
        continue;
      }
      User& u = it->second.user;
      const bool before = u.quotaExceeded();
      u.traffic += d.delta;
      if (options_.shared_store != nullptr && u.source == UserSource::Api) {
        split_traffic_[d.name].local += d.delta;
      }
      quota_changed = quota_changed || before != u.quotaExceeded();
      if (!u.first_use.has_value() && (d.delta.tcp_connections != 0 || d.delta.udp_packets != 0)) {
        // The first session or datagram the relay identified as this user: an
        // expire_after_first_use runs from here (the report is at most about a second late).
        u.first_use = now;
        next_deadline_ = std::min(next_deadline_, u.expiry());
        // With a shared store it travels with this server's traffic key instead.
        first_use_saved = first_use_saved ||
                          (u.source == UserSource::Api && options_.shared_store == nullptr);
      }
      if (u.source == UserSource::Api) {
        traffic_dirty_ = true;
      }
    }
    // Under mu_, so that a period the registry starts (tick(), which takes mu_) splits these
    // bytes the same way in the registry's count and in the store's key.
    if (options_.shared_store != nullptr) options_.shared_store->addTraffic(deltas);
  }
  if (first_use_saved) {
    // A restart must not forget it (that would restart the user's time).
    if (absl::Status s = flush(); !s.ok()) {
      SR_LOG(Warn, "user store: first use not saved: %s", s.message());
    }
  }
  if (quota_changed) republish();
}

void UserRegistry::addTraffic(absl::string_view name, const TrafficCounters& delta) {
  const TrafficDelta d{std::string(name), delta};
  addTraffic(std::span<const TrafficDelta>(&d, 1));
}

absl::Status UserRegistry::flush() {
  absl::MutexLock write(&write_mu_);
  State state;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (!traffic_dirty_ || (store_ == nullptr && options_.shared_store == nullptr)) {
      return absl::OkStatus();
    }
    state = state_;
  }
  if (absl::Status s = persist(state); !s.ok()) {
    // ABORTED: another server changed the store first; its change arrives and the next flush
    // writes what is still ours (a first use, a new quota period).
    return s.code() == absl::StatusCode::kAborted ? absl::OkStatus() : s;
  }
  absl::MutexLock lock(&mu_);
  traffic_dirty_ = mergeTrafficLocked(state.users);
  return absl::OkStatus();
}

relay::UserTablePtr UserRegistry::snapshot() const {
  absl::ReaderMutexLock lock(&mu_);
  return snapshot_;
}

absl::Time UserRegistry::nextDeadline() const {
  absl::ReaderMutexLock lock(&mu_);
  return next_deadline_;
}

void UserRegistry::tick() {
  absl::MutexLock write(&write_mu_);
  relay::UserTablePtr snapshot;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = options_.now();
    if (now < next_deadline_) return;
    for (auto& [name, entry] : state_.users) {
      const bool was_over = entry.user.quotaExceeded();
      if (entry.user.rollQuotaPeriod(now)) {
        if (entry.user.source == UserSource::Api) {
          traffic_dirty_ = true;  // saved by flush() (with a shared store: to the cache only)
          if (options_.shared_store != nullptr) sharedQuotaLocked(entry.user);
        }
        if (was_over && !entry.user.quotaExceeded()) {
          SR_LOG(Info, "user \"%s\": a new quota period began; it works again", name);
        }
      }
      const relay::RelayUser* published = snapshot_->find(name);
      if (entry.user.expiredAt(now) && published != nullptr && !published->expired) {
        SR_LOG(Info, "user \"%s\" expired; its sessions are closed", name);
      }
    }
    snapshot_ = buildSnapshotLocked();
    snapshot = snapshot_;
  }
  publish(snapshot);
}

std::array<size_t, kUserStateCount> UserRegistry::countByState() const {
  std::array<size_t, kUserStateCount> counts{};
  absl::ReaderMutexLock lock(&mu_);
  const absl::Time now = options_.now();
  for (const auto& [name, entry] : state_.users) {
    ++counts[static_cast<size_t>(stateOf(entry.user, now))];
  }
  return counts;
}

std::vector<UserRegistry::QuotaUsage> UserRegistry::quotaUsage() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<QuotaUsage> out;
  out.reserve(state_.users.size());
  for (const auto& [name, entry] : state_.users) {
    out.push_back({name, entry.user.quotaUsedBytes(), entry.user.limits.data_quota_bytes});
  }
  return out;
}

uint64_t UserRegistry::subscribe(Subscriber subscriber) {
  absl::MutexLock write(&write_mu_);
  const uint64_t id = next_subscriber_++;
  relay::UserTablePtr current = snapshot();
  subscriber(current);
  subscribers_.emplace(id, std::move(subscriber));
  return id;
}

void UserRegistry::unsubscribe(uint64_t id) {
  absl::MutexLock write(&write_mu_);
  subscribers_.erase(id);
}

std::string UserRegistry::clientPassword(const User& user) const {
  const crypto::MethodInfo& method = methodOf(user);
  if (method.edition != crypto::Edition::Aead2022) {
    return user.password;
  }
  const std::string& psk = user.password.empty() ? user.key : user.password;
  if (!crypto::usesSeparateHeader(method)) {
    return psk;
  }
  absl::ReaderMutexLock lock(&mu_);
  const auto ports = identityPorts(state_);
  auto port = ports.find(user.port);
  if (port == ports.end() || port->second != &method) {
    return psk;  // alone on its port: the PSK, no identity header
  }
  if (holdsServerKey(user)) {
    return "";  // -k is only the identity key of a port with users
  }
  const std::string ipsk = identityKeyText(user.port, method, state_);
  return ipsk.empty() ? std::string() : absl::StrCat(ipsk, ":", psk);
}

std::string UserRegistry::storePath() const { return store_ == nullptr ? "" : store_->path(); }

}  // namespace shadowrelay::api::users
