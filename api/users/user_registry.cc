// SPDX-License-Identifier: Apache-2.0
#include "api/users/user_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/method.h"
#include "relay/log.h"

namespace shadowrelay::api::users {
namespace {

absl::Status withUser(absl::string_view name, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("user \"", name, "\": ", s.message()));
}

/// A method for a user. 2022 methods serve only the single default user (-k/--key) of the
/// shared port for now (issue 14 part 2): any other user with one is FAILED_PRECONDITION.
absl::StatusOr<const crypto::MethodInfo*> methodOrInvalid(absl::string_view name,
                                                          bool default_user = false) {
  auto method = crypto::findAnyMethod(name);
  if (!method.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("method: ", method.status().message()));
  }
  if ((*method)->edition == crypto::Edition::Aead2022 && !default_user) {
    return absl::FailedPreconditionError(absl::StrCat(
        "method: ", (*method)->name,
        " serves only the single default user (-k/--key) for now; users take the methods ",
        crypto::supportedMethodList()));
  }
  return *method;
}

/// A 2022 default user is the only user of the server for now.
template <typename Table>
bool serves2022(const Table& table) {
  for (const auto& [name, entry] : table) {
    if (crypto::findAnyMethod(entry.user.method).value()->edition == crypto::Edition::Aead2022) {
      return true;
    }
  }
  return false;
}

absl::Status readOnly(const User& u) {
  return absl::FailedPreconditionError(absl::StrCat(
      "user \"", u.name, "\" comes from the ",
      u.source == UserSource::Default ? "command line (-k/--key)" : "configuration file",
      " and is read-only through the API; change it there"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<UserRegistry>> UserRegistry::open(RegistryOptions options) {
  auto default_method = methodOrInvalid(options.default_method, /*default_user=*/true);
  if (!default_method.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("default ", default_method.status().message()));
  }
  options.default_method = std::string((*default_method)->name);
  std::unique_ptr<UserRegistry> registry(new UserRegistry(std::move(options)));
  UserRegistry& r = *registry;
  absl::MutexLock write(&r.write_mu_);
  absl::MutexLock lock(&r.mu_);
  r.default_method_ = r.options_.default_method;

  auto add = [&r](User user) -> absl::Status {
    if (absl::Status s = validateUserName(user.name); !s.ok()) {
      return withUser(user.name, s);
    }
    if (r.users_.count(user.name) != 0) {
      return absl::AlreadyExistsError(absl::StrCat("user \"", user.name, "\" is defined twice"));
    }
    auto method = methodOrInvalid(user.method, user.source == UserSource::Default);
    if (!method.ok()) {
      return withUser(user.name, method.status());
    }
    user.method = std::string((*method)->name);
    if (!r.users_.empty() && ((*method)->edition == crypto::Edition::Aead2022 ||
                              serves2022(r.users_))) {
      return absl::FailedPreconditionError(absl::StrCat(
          "user \"", user.name, "\": a 2022 method serves one user (-k/--key) for now; "
          "no other users beside it"));
    }
    auto key = crypto::masterKeyFor(**method, user.password, user.key);
    if (!key.ok()) {
      return withUser(user.name, key.status());
    }
    if (user.port == r.options_.shared_port) {
      user.port = 0;
    }
    if (user.port != 0) {
      if (absl::Status s = r.checkPortLocked(user.port, user.name, r.users_); !s.ok()) {
        return withUser(user.name, s);
      }
    }
    Entry entry{std::move(user), *std::move(key)};
    std::string name = entry.user.name;
    r.users_.emplace(std::move(name), std::move(entry));
    return absl::OkStatus();
  };

  for (const User& configured : r.options_.configured_users) {
    User user = configured;
    if (user.source == UserSource::Api) {
      user.source = UserSource::Config;
    }
    if (user.created == absl::UnixEpoch()) {
      user.created = r.options_.now();
    }
    if (absl::Status s = add(std::move(user)); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("configured users: ", s.message()));
    }
  }

  if (!r.options_.state_dir.empty()) {
    auto store = UserStore::open(r.options_.state_dir);
    if (!store.ok()) {
      return store.status();
    }
    r.store_ = *std::move(store);
    auto loaded = r.store_->load();
    if (!loaded.ok()) {
      return loaded.status();
    }
    if (!loaded->warning.empty()) {
      SR_LOG(Warn, "%s", loaded->warning);
    }
    for (User& user : loaded->contents.users) {
      user.source = UserSource::Api;
      const std::string name = user.name;
      if (absl::Status s = add(std::move(user)); !s.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "user store ", r.store_->path(), ": ", s.message(),
            " (a user of the store clashes with the configuration: remove one of them)"));
      }
    }
    if (loaded->contents.default_method.has_value()) {
      r.persisted_default_ = loaded->contents.default_method;
      if (!r.options_.default_method_given) {
        r.default_method_ = *loaded->contents.default_method;
      } else if (*loaded->contents.default_method != r.default_method_) {
        SR_LOG(Info, "default method %s (given) instead of %s (stored by SetDefaults)",
               r.default_method_, *loaded->contents.default_method);
      }
    }
    SR_LOG(Info, "user store %s: %d API users (generation %d)", r.store_->path(),
           loaded->contents.users.size(), r.store_->generation());
  }
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
  if (port == options_.shared_port) {
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

bool UserRegistry::mergeTrafficLocked(Table& table) const {
  bool newer = false;
  for (auto& [name, entry] : table) {
    auto current = users_.find(name);
    if (current != users_.end() && current->second.user.traffic != entry.user.traffic) {
      entry.user.traffic = current->second.user.traffic;
      newer = newer || entry.user.source == UserSource::Api;
    }
  }
  return newer;
}

relay::UserTablePtr UserRegistry::buildSnapshotLocked() {
  std::vector<relay::RelayUser> users;
  users.reserve(users_.size());
  for (const auto& [name, entry] : users_) {
    const User& u = entry.user;
    relay::RelayUser r;
    r.name = u.name;
    r.method = *crypto::findAnyMethod(u.method);  // validated when the entry was made
    r.provider = options_.providers != nullptr ? &options_.providers->providerFor(*r.method)
                                               : nullptr;
    r.key = entry.key;
    r.port = u.port;
    r.enabled = u.enabled;
    r.quota_exceeded = u.quotaExceeded();
    r.max_connections = u.limits.max_connections;
    users.push_back(std::move(r));
  }
  // Users also in the current table keep its UserLive (their open connection count).
  return std::make_shared<const relay::UserTable>(++snapshot_generation_, std::move(users),
                                                  snapshot_.get());
}

void UserRegistry::publish(const relay::UserTablePtr& snapshot) {
  for (const auto& [id, subscriber] : subscribers_) {
    subscriber(snapshot);
  }
}

absl::Status UserRegistry::persist(const Table& table,
                                   const std::optional<std::string>& persisted_default) {
  if (store_ == nullptr) {
    return absl::OkStatus();
  }
  StoreContents contents;
  contents.default_method = persisted_default;
  for (const auto& [name, entry] : table) {
    if (entry.user.source == UserSource::Api) {
      contents.users.push_back(entry.user);
    }
  }
  if (absl::Status s = store_->save(contents); !s.ok()) {
    SR_LOG(Error, "user store: %s", s.message());
    return absl::InternalError(absl::StrCat("the user store could not be written: ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status UserRegistry::commit(Table table, std::optional<std::string> persisted_default,
                                  bool publish_snapshot) {
  if (absl::Status s = persist(table, persisted_default); !s.ok()) {
    return s;
  }
  relay::UserTablePtr snapshot;
  {
    absl::MutexLock lock(&mu_);
    // addTraffic() may have counted since `table` was copied: keep the newer counters, and
    // stay dirty if they are newer than what was just written.
    traffic_dirty_ = mergeTrafficLocked(table);
    users_ = std::move(table);
    persisted_default_ = persisted_default;
    if (persisted_default.has_value()) {
      default_method_ = *persisted_default;
    }
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

absl::StatusOr<User> UserRegistry::create(const NewUser& request) {
  if (absl::Status s = validateUserName(request.name); !s.ok()) {
    return s;
  }
  absl::MutexLock write(&write_mu_);
  Table table;
  std::optional<std::string> persisted_default;
  std::string default_method;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (users_.count(request.name) != 0) {
      return absl::AlreadyExistsError(absl::StrCat("user \"", request.name, "\" already exists"));
    }
    if (serves2022(users_)) {
      return absl::FailedPreconditionError(
          "the server's user has a 2022 method, which serves one user (-k/--key) for now");
    }
    default_method = default_method_;
  }
  auto method = methodOrInvalid(request.method.empty() ? default_method : request.method);
  if (!method.ok()) {
    return method.status();
  }
  User user;
  user.name = request.name;
  user.method = std::string((*method)->name);
  user.password = request.password;
  user.key = request.key;
  if (user.password.empty() && user.key.empty()) {
    user.password = crypto::randomBase64Key((*method)->key_size);
  }
  auto key = crypto::masterKeyFor(**method, user.password, user.key);
  if (!key.ok()) {
    return absl::InvalidArgumentError(key.status().message());
  }
  user.port = request.port == options_.shared_port ? 0 : request.port;
  user.enabled = request.enabled;
  user.limits = request.limits;
  user.created = options_.now();
  user.source = UserSource::Api;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (user.port != 0) {
      if (absl::Status s = checkPortLocked(user.port, user.name, users_); !s.ok()) {
        return s;
      }
    }
    table = users_;
    persisted_default = persisted_default_;
  }
  if (user.port != 0 && options_.port_check) {
    if (absl::Status s = options_.port_check(user.port); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("port ", user.port, ": ", s.message()));
    }
  }
  table.emplace(user.name, Entry{user, *std::move(key)});
  if (absl::Status s = commit(std::move(table), std::move(persisted_default), true); !s.ok()) {
    return s;
  }
  SR_LOG(Info, "control: user \"%s\" created (method %s, %s)", user.name, user.method,
         user.port == 0 ? std::string("shared port") : absl::StrCat("port ", user.port));
  return user;
}

absl::StatusOr<User> UserRegistry::get(absl::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = users_.find(name);
  if (it == users_.end()) {
    return absl::NotFoundError(absl::StrCat("no user \"", name, "\""));
  }
  return it->second.user;
}

std::vector<User> UserRegistry::list() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<User> out;
  out.reserve(users_.size());
  for (const auto& [name, entry] : users_) {
    out.push_back(entry.user);
  }
  return out;
}

size_t UserRegistry::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return users_.size();
}

absl::Status UserRegistry::copyForChange(absl::string_view name, Table* table,
                                         std::optional<std::string>* persisted_default) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = users_.find(name);
  if (it == users_.end()) {
    return absl::NotFoundError(absl::StrCat("no user \"", name, "\""));
  }
  if (it->second.user.source != UserSource::Api) {
    return readOnly(it->second.user);
  }
  *table = users_;
  *persisted_default = persisted_default_;
  return absl::OkStatus();
}

absl::StatusOr<User> UserRegistry::update(absl::string_view name, const UserUpdate& update) {
  absl::MutexLock write(&write_mu_);
  Table table;
  std::optional<std::string> persisted_default;
  if (absl::Status s = copyForChange(name, &table, &persisted_default); !s.ok()) {
    return s;
  }
  Entry& entry = table.find(name)->second;
  User user = entry.user;
  if (update.method.has_value()) {
    auto method = methodOrInvalid(*update.method);
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
  auto key = crypto::masterKeyFor(*method, user.password, user.key);
  if (!key.ok()) {
    return absl::InvalidArgumentError(key.status().message());
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
  if (user == entry.user) {
    return user;  // nothing changed: no write, no new snapshot
  }
  entry.user = user;
  entry.key = *std::move(key);
  if (absl::Status s = commit(std::move(table), std::move(persisted_default), true); !s.ok()) {
    return s;
  }
  SR_LOG(Info, "control: user \"%s\" updated (method %s, %s%s)", user.name, user.method,
         user.enabled ? "enabled" : "disabled",
         update.password.has_value() || update.key.has_value() ? ", secret rotated" : "");
  return user;
}

absl::Status UserRegistry::remove(absl::string_view name) {
  absl::MutexLock write(&write_mu_);
  Table table;
  std::optional<std::string> persisted_default;
  if (absl::Status s = copyForChange(name, &table, &persisted_default); !s.ok()) {
    return s;
  }
  table.erase(table.find(name));
  if (absl::Status s = commit(std::move(table), std::move(persisted_default), true); !s.ok()) {
    return s;
  }
  SR_LOG(Info, "control: user \"%s\" deleted", std::string(name));
  return absl::OkStatus();
}

std::string UserRegistry::defaultMethod() const {
  absl::ReaderMutexLock lock(&mu_);
  return default_method_;
}

absl::StatusOr<std::string> UserRegistry::setDefaultMethod(absl::string_view name) {
  auto method = methodOrInvalid(name);
  if (!method.ok()) {
    return method.status();
  }
  std::string canonical((*method)->name);
  absl::MutexLock write(&write_mu_);
  Table table;
  {
    absl::ReaderMutexLock lock(&mu_);
    table = users_;
  }
  if (absl::Status s = commit(std::move(table), canonical, false); !s.ok()) {
    return s;
  }
  SR_LOG(Info, "control: default method set to %s", canonical);
  return canonical;
}

void UserRegistry::addTraffic(std::span<const TrafficDelta> deltas) {
  bool quota_changed = false;
  {
    absl::MutexLock lock(&mu_);
    for (const TrafficDelta& d : deltas) {
      auto it = users_.find(d.name);
      if (it == users_.end()) {
        continue;
      }
      User& u = it->second.user;
      const bool before = u.quotaExceeded();
      u.traffic += d.delta;
      quota_changed = quota_changed || before != u.quotaExceeded();
      if (u.source == UserSource::Api) {
        traffic_dirty_ = true;
      }
    }
  }
  if (quota_changed) {
    absl::MutexLock write(&write_mu_);
    relay::UserTablePtr snapshot;
    {
      absl::MutexLock lock(&mu_);
      snapshot_ = buildSnapshotLocked();
      snapshot = snapshot_;
    }
    publish(snapshot);
  }
}

void UserRegistry::addTraffic(absl::string_view name, const TrafficCounters& delta) {
  const TrafficDelta d{std::string(name), delta};
  addTraffic(std::span<const TrafficDelta>(&d, 1));
}

absl::Status UserRegistry::flush() {
  absl::MutexLock write(&write_mu_);
  Table table;
  std::optional<std::string> persisted_default;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (!traffic_dirty_ || store_ == nullptr) {
      return absl::OkStatus();
    }
    table = users_;
    persisted_default = persisted_default_;
  }
  if (absl::Status s = persist(table, persisted_default); !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&mu_);
  traffic_dirty_ = mergeTrafficLocked(table);
  return absl::OkStatus();
}

relay::UserTablePtr UserRegistry::snapshot() const {
  absl::ReaderMutexLock lock(&mu_);
  return snapshot_;
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

std::string UserRegistry::storePath() const { return store_ == nullptr ? "" : store_->path(); }

}  // namespace shadowrelay::api::users
