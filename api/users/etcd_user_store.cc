// SPDX-License-Identifier: Apache-2.0
#include "api/users/etcd_user_store.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "crypto/key_derivation.h"
#include "nlohmann/json.hpp"
#include "relay/log.h"

namespace shadowrelay::api::users {
namespace {

using json = nlohmann::json;

constexpr absl::string_view kGuard = "config_revision";
constexpr absl::string_view kUsers = "users/";
constexpr absl::string_view kDefaults = "defaults";
constexpr absl::string_view kIdentityKeys = "identity_keys/";
constexpr absl::string_view kReplicas = "replicas/";
constexpr absl::string_view kTraffic = "traffic/";
constexpr absl::string_view kLive = "live/";
constexpr absl::string_view kBase = "_base";
constexpr absl::string_view kDeviceKey = "device_key";
/// A live/ value's device list is at most this long (a replica lists at most max(max_devices,
/// DeviceTracker::kMinCapacity) devices of a user); longer ones are cut here.
constexpr size_t kMaxLiveDevices = 4096;
/// etcd's default --max-txn-ops is 128; one op of each transaction is the guard or is spare.
constexpr size_t kMaxOps = 120;
/// How long a configuration write whose answer was lost waits for etcd to tell whether it was
/// made (resolveLostWrite()): the time one request may take (EtcdOptions::request_timeout's
/// default), by which a new leader has been elected (etcd's default election timeout is 1 s),
/// and short enough that writes with every member down still answer UNAVAILABLE within about
/// two request timeouts (cluster_e2e_test's outage checks make three of them in 10 s).
constexpr absl::Duration kResolveFor = absl::Seconds(2);
/// Between two tries of finding out: a client calling etcd in a tight loop while its channels
/// reconnect delays the reconnection (etcd_user_store_test measured 7.7 s instead of 1 s).
constexpr absl::Duration kResolvePause = absl::Milliseconds(200);
/// At most this many writes of the guard are read back past a lost one (they were made in the
/// seconds its answer was missing; more means something else rewrites the guard in a loop).
constexpr int kMaxGuardHistory = 100;

etcd::Op putOp(std::string key, std::string value, int64_t lease = 0) {
  etcd::Op op;
  op.kind = etcd::Op::Kind::Put;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}

etcd::Op deleteOp(std::string key, bool prefix = false) {
  etcd::Op op;
  op.kind = prefix ? etcd::Op::Kind::DeletePrefix : etcd::Op::Kind::Delete;
  op.key = std::move(key);
  return op;
}

etcd::Op getOp(std::string key) {
  etcd::Op op;
  op.kind = etcd::Op::Kind::Get;
  op.key = std::move(key);
  return op;
}

etcd::Compare compareOp(std::string key, etcd::Compare::Target target, int64_t number) {
  etcd::Compare c;
  c.key = std::move(key);
  c.target = target;
  c.result = etcd::Compare::Result::Equal;
  c.number = number;
  return c;
}

bool isConfigKey(absl::string_view suffix) {
  return suffix == kGuard || suffix == kDefaults || absl::StartsWith(suffix, kUsers) ||
         absl::StartsWith(suffix, kIdentityKeys);
}

std::string formatTime(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

std::optional<absl::Time> parseTime(const json& j, const char* field) {
  auto it = j.find(field);
  absl::Time when;
  std::string error;
  if (it == j.end() || !it->is_string() ||
      !absl::ParseTime(absl::RFC3339_full, it->get<std::string>(), &when, &error)) {
    return std::nullopt;
  }
  return when;
}

std::string encodeTraffic(const EtcdTrafficValue& v) {
  const TrafficCounters& t = v.counters;
  json j = {{"bytes_up", t.bytes_up},
            {"bytes_down", t.bytes_down},
            {"tcp_connections", t.tcp_connections},
            {"udp_packets", t.udp_packets}};
  if (v.first_use.has_value()) j["first_use"] = formatTime(*v.first_use);
  if (v.period_start.has_value()) {
    j["period_start"] = formatTime(*v.period_start);
    j["period_bytes"] = v.period_bytes;
  }
  return j.dump();
}

std::optional<absl::Time> earlier(std::optional<absl::Time> a, std::optional<absl::Time> b) {
  if (!a.has_value()) return b;
  if (!b.has_value()) return a;
  return std::min(*a, *b);
}

/// A traffic key's value; a first use or a period that does not parse is left out (a key of
/// an older version has neither).
std::optional<EtcdTrafficValue> decodeTraffic(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  EtcdTrafficValue v;
  TrafficCounters& t = v.counters;
  for (auto [field, out] : {std::pair<const char*, uint64_t*>{"bytes_up", &t.bytes_up},
                            {"bytes_down", &t.bytes_down},
                            {"tcp_connections", &t.tcp_connections},
                            {"udp_packets", &t.udp_packets}}) {
    auto it = j.find(field);
    if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
    *out = it->get<uint64_t>();
  }
  v.first_use = parseTime(j, "first_use");
  if (auto bytes = j.find("period_bytes"); bytes != j.end() && bytes->is_number_unsigned()) {
    v.period_start = parseTime(j, "period_start");
    if (v.period_start.has_value()) v.period_bytes = bytes->get<uint64_t>();
  }
  return v;
}

/// `a` and `b` together in one key (a gone server's folded into _base): counters summed, the
/// earlier first use, and the bytes of the later period (summed if both count it).
EtcdTrafficValue combine(const EtcdTrafficValue& a, const EtcdTrafficValue& b) {
  EtcdTrafficValue out = a;
  out.counters += b.counters;
  out.first_use = earlier(a.first_use, b.first_use);
  if (b.period_start.has_value()) {
    if (!a.period_start.has_value() || *b.period_start > *a.period_start) {
      out.period_start = b.period_start;
      out.period_bytes = b.period_bytes;
    } else if (*b.period_start == *a.period_start) {
      out.period_bytes += b.period_bytes;
    }
  }
  return out;
}

TrafficCounters minus(const TrafficCounters& a, const TrafficCounters& b) {
  auto sub = [](uint64_t x, uint64_t y) { return x > y ? x - y : 0; };
  return {sub(a.bytes_up, b.bytes_up), sub(a.bytes_down, b.bytes_down),
          sub(a.tcp_connections, b.tcp_connections), sub(a.udp_packets, b.udp_packets)};
}

std::string encodeLive(const LiveCount& live) {
  json j = {{"connections", live.connections}, {"devices", live.devices}};
  return j.dump();
}

std::optional<LiveCount> decodeLive(absl::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto connections = j.find("connections");
  auto devices = j.find("devices");
  if (connections == j.end() || !connections->is_number_unsigned() ||
      connections->get<uint64_t>() > UINT32_MAX || devices == j.end() || !devices->is_array()) {
    return std::nullopt;
  }
  LiveCount live;
  live.connections = connections->get<uint32_t>();
  for (const json& device : *devices) {
    if (!device.is_string()) return std::nullopt;
    if (live.devices.size() < kMaxLiveDevices) live.devices.push_back(device.get<std::string>());
  }
  return live;
}

/// "<kind><name>/<id>" (kind "traffic/" or "live/") -> (name, id).
std::optional<std::pair<std::string, std::string>> splitKey(absl::string_view suffix,
                                                            absl::string_view kind) {
  if (!absl::ConsumePrefix(&suffix, kind)) return std::nullopt;
  std::vector<std::string> parts = absl::StrSplit(suffix, '/');
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) return std::nullopt;
  return std::make_pair(parts[0], parts[1]);
}

/// The value of config_revision a configuration transaction writes: "<replica id>:<32 hex>",
/// unique to that transaction, so that after a lost answer the transaction can be recognised
/// in the guard's history. Nothing else reads the value (a store written before these ids, whose
/// guard holds the bare replica id, is read alike; such a value never equals a new id).
std::string newWriteId(absl::string_view replica) {
  uint8_t bytes[16];
  crypto::randomBytes(bytes);
  return absl::StrCat(replica, ":",
                      absl::BytesToHexString(absl::string_view(
                          reinterpret_cast<const char*>(bytes), sizeof(bytes))));
}

/// A transaction that ended with this code may have been made by etcd all the same: its
/// request was sent and the answer did not come back (the connection was cut, the deadline
/// passed, etcd gave up waiting for its raft log: "request timed out", "leader changed").
bool answerMayBeLost(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded ||
         code == absl::StatusCode::kCancelled || code == absl::StatusCode::kUnknown;
}

/// What the store holds for `contents`: configuration key suffix -> value.
std::map<std::string, std::string> desiredConfig(const StoreContents& contents) {
  std::map<std::string, std::string> out;
  for (User user : contents.users) {
    user.traffic = TrafficCounters{};  // traffic lives in traffic/ keys, and so do
    user.first_use.reset();            // the first use (TrafficTotal::first_use says why)
    user.quota_period_start.reset();   // and the quota period's bytes: every server starts
    user.quota_base_bytes = 0;         // a period itself (TrafficTotal::period_bytes)
    user.source = UserSource::Api;
    out.emplace(absl::StrCat(kUsers, user.name), encodeUserText(user));
  }
  if (contents.default_method.has_value()) {
    out.emplace(std::string(kDefaults), json{{"default_method", *contents.default_method}}.dump());
  }
  for (const PortIdentityKey& k : contents.identity_keys) {
    out.emplace(absl::StrCat(kIdentityKeys, k.port, "/", k.method), encodeIdentityKeyText(k));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdUserStore>> EtcdUserStore::create(
    etcd::EtcdOptions client_options, EtcdStoreOptions options) {
  if (options.prefix.empty() || options.prefix.front() != '/' || options.prefix.back() != '/') {
    return absl::InvalidArgumentError("etcd_prefix: must start and end with '/'");
  }
  if (options.replica_id.empty() ||
      options.replica_id.find_first_of("/ ") != std::string::npos || options.replica_id == kBase) {
    return absl::InvalidArgumentError("replica_id: must be non-empty, without '/' or spaces");
  }
  std::unique_ptr<EtcdUserStore> store(new EtcdUserStore(std::move(options)));
  EtcdUserStore* self = store.get();
  client_options.observer = [self](absl::string_view method, absl::StatusCode code) {
    self->countRequest(method, code);
  };
  auto client = etcd::EtcdClient::create(std::move(client_options));
  if (!client.ok()) return client.status();
  store->client_ = *std::move(client);
  return store;
}

EtcdUserStore::EtcdUserStore(EtcdStoreOptions options) : options_(std::move(options)) {
  replica_id_ = options_.replica_id;
}

void EtcdUserStore::countRequest(absl::string_view method, absl::StatusCode code) {
  std::string result = absl::StatusCodeToString(code);
  for (char& c : result) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  absl::MutexLock lock(&requests_mu_);
  ++requests_[{std::string(method), std::move(result)}];
}

EtcdUserStore::~EtcdUserStore() { stop(); }

std::string EtcdUserStore::describe() const { return absl::StrCat("etcd ", options_.prefix); }

void EtcdUserStore::resetFromListLocked(const etcd::RangeResult& range) {
  config_.clear();
  traffic_.clear();
  replicas_.clear();
  // Users live elsewhere before may have nothing live now: they are told so too.
  for (const auto& [name, per_id] : live_) live_dirty_.insert(name);
  live_.clear();
  device_key_seen_ = false;
  guard_applied_ = 0;
  for (const etcd::KeyValue& kv : range.kvs) {
    etcd::WatchEvent event;
    event.kv = kv;
    applyLocked(event, nullptr);
  }
  // What this server published and etcd no longer has (deleted with its user while this server
  // did not hear it) is written again at the next sync.
  std::erase_if(published_live_, [&](const auto& published) {
    auto it = live_.find(published.first);
    return it == live_.end() || it->second.count(replica_id_) == 0;
  });
  // A list is what the listener gets next (load() or relist()), so it holds the guard too.
  if (auto it = config_.find(std::string(kGuard)); it != config_.end()) {
    guard_applied_ = it->second.mod_revision;
  }
  revision_ = range.revision;
  listed_ = true;
}

int EtcdUserStore::applyLocked(const etcd::WatchEvent& event,
                               std::set<std::string>* traffic_users) {
  absl::string_view suffix = event.kv.key;
  if (!absl::ConsumePrefix(&suffix, options_.prefix)) return 0;
  const bool put = event.type == etcd::WatchEvent::Type::Put;
  const int64_t rev = event.kv.mod_revision;
  revision_ = std::max(revision_, rev);
  if (isConfigKey(suffix)) {
    auto it = config_.find(std::string(suffix));
    if (it != config_.end() && it->second.mod_revision >= rev) return 0;  // heard already
    if (put) {
      config_[std::string(suffix)] = Stored{event.kv.value, rev};
    } else if (it != config_.end()) {
      config_.erase(it);
    } else {
      return 0;
    }
    if (!put && absl::StartsWith(suffix, kUsers)) {
      const std::string name(suffix.substr(kUsers.size()));
      own_.erase(name);
      own_written_.erase(name);
      own_sent_.erase(name);
      own_first_use_.erase(name);
      own_period_.erase(name);
      period_dirty_.erase(name);
      retired_.erase(name);
    }
    if (auto at = written_at_.find(rev); at != written_at_.end()) {
      watch_lag_seconds_ = absl::ToDoubleSeconds(absl::Now() - at->second);
      written_at_.erase(written_at_.begin(), std::next(at));
    }
    return 1;
  }
  if (absl::StartsWith(suffix, kReplicas)) {
    const std::string id(suffix.substr(kReplicas.size()));
    if (put) {
      replicas_.insert(id);
    } else {
      replicas_.erase(id);
    }
    return 0;
  }
  if (suffix == kDeviceKey) {
    device_key_seen_ = put && !event.kv.value.empty();
    if (device_key_seen_) device_secret_ = event.kv.value;
    return 0;
  }
  if (auto parts = splitKey(suffix, kLive)) {
    const auto& [name, id] = *parts;
    std::optional<LiveCount> live;
    if (put) {
      live = decodeLive(event.kv.value);
      if (!live.has_value()) {
        SR_LOG(Warn, "etcd %s%s: not live counts; ignored", options_.prefix, suffix);
      }
    }
    if (live.has_value()) {
      live_[name][id] = *std::move(live);
    } else if (auto it = live_.find(name); it != live_.end()) {
      it->second.erase(id);
      if (it->second.empty()) live_.erase(it);
    }
    if (!put && id == replica_id_) published_live_.erase(name);  // removed with its user
    live_dirty_.insert(name);
    return 3;
  }
  if (auto parts = splitKey(suffix, kTraffic)) {
    auto& per_user = traffic_[parts->first];
    if (put) {
      auto value = decodeTraffic(event.kv.value);
      if (!value.has_value()) {
        SR_LOG(Warn, "etcd %s%s: not traffic counters; ignored", options_.prefix, suffix);
        return 0;
      }
      per_user[parts->second] = {*std::move(value), rev};
    } else {
      per_user.erase(parts->second);
      if (per_user.empty()) traffic_.erase(parts->first);
    }
    if (traffic_users != nullptr) traffic_users->insert(parts->first);
    return 2;
  }
  return 0;
}

StoreContents EtcdUserStore::contentsLocked() {
  StoreContents contents;
  contents.users.reserve(config_.size());
  for (auto& [suffix, stored] : config_) {
    if (absl::StartsWith(suffix, kUsers)) {
      if (stored.user == nullptr) {
        auto decoded = decodeUserText(stored.value);
        if (decoded.ok() && decoded->name != suffix.substr(kUsers.size())) {
          decoded = absl::InvalidArgumentError("another name");
        }
        if (!decoded.ok()) {
          SR_LOG(Warn, "etcd %s%s: not a user (%s); ignored", options_.prefix, suffix,
                 decoded.status().message());
        }
        stored.user = std::make_shared<const absl::StatusOr<User>>(std::move(decoded));
      }
      if (!stored.user->ok()) continue;
      contents.users.push_back(**stored.user);
      User& user = contents.users.back();
      user.traffic = othersLocked(user.name);
      user.first_use = earlier(user.first_use, othersFirstUseLocked(user.name));
      // The latest period the others count, so that a server starting mid-period knows the
      // period's use at once (the registry rolls it if its own clock says otherwise).
      if (auto periods = othersPeriodsLocked(user.name); !periods.empty()) {
        const uint64_t total = user.traffic.totalBytes();
        user.quota_period_start = periods.back().first;
        user.quota_base_bytes = total > periods.back().second ? total - periods.back().second : 0;
      }
    } else if (absl::StartsWith(suffix, kIdentityKeys)) {
      auto key = decodeIdentityKeyText(stored.value);
      if (!key.ok()) {
        SR_LOG(Warn, "etcd %s%s: not an identity key (%s); ignored", options_.prefix, suffix,
               key.status().message());
        continue;
      }
      contents.identity_keys.push_back(*std::move(key));
    } else if (suffix == kDefaults) {
      json j = json::parse(stored.value, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("default_method") && j["default_method"].is_string()) {
        contents.default_method = j["default_method"].get<std::string>();
      }
    }
  }
  return contents;
}

TrafficCounters EtcdUserStore::othersLocked(const std::string& name) const {
  TrafficCounters sum;
  auto it = traffic_.find(name);
  if (it == traffic_.end()) return sum;
  for (const auto& [id, stored] : it->second) {
    if (id != replica_id_) sum += stored.value.counters;
  }
  if (auto retired = retired_.find(name); retired != retired_.end()) {
    sum = minus(sum, retired->second.counters);
  }
  return sum;
}

std::optional<absl::Time> EtcdUserStore::othersFirstUseLocked(const std::string& name) const {
  std::optional<absl::Time> first;
  auto it = traffic_.find(name);
  if (it == traffic_.end()) return first;
  for (const auto& [id, stored] : it->second) {
    if (id != replica_id_) first = earlier(first, stored.value.first_use);
  }
  return first;
}

std::vector<std::pair<absl::Time, uint64_t>> EtcdUserStore::othersPeriodsLocked(
    const std::string& name) const {
  std::map<absl::Time, uint64_t> by_start;
  auto it = traffic_.find(name);
  if (it == traffic_.end()) return {};
  for (const auto& [id, stored] : it->second) {
    if (id == replica_id_ || !stored.value.period_start.has_value()) continue;
    by_start[*stored.value.period_start] += stored.value.period_bytes;
  }
  if (auto retired = retired_.find(name);
      retired != retired_.end() && retired->second.period_start.has_value()) {
    if (auto at = by_start.find(*retired->second.period_start); at != by_start.end()) {
      at->second = at->second > retired->second.period_bytes
                       ? at->second - retired->second.period_bytes : 0;
    }
  }
  return {by_start.begin(), by_start.end()};
}

std::vector<TrafficTotal> EtcdUserStore::totalsLocked(const std::set<std::string>& names) const {
  std::vector<TrafficTotal> out;
  out.reserve(names.size());
  for (const std::string& name : names) {
    out.push_back(
        {name, othersLocked(name), othersFirstUseLocked(name), othersPeriodsLocked(name)});
  }
  return out;
}

LiveCount EtcdUserStore::liveTotalLocked(const std::string& name) const {
  LiveCount total;
  total.name = name;
  auto it = live_.find(name);
  if (it == live_.end()) return total;
  uint64_t connections = 0;
  std::set<std::string> devices;
  for (const auto& [id, live] : it->second) {
    if (id == replica_id_) continue;
    connections += live.connections;
    devices.insert(live.devices.begin(), live.devices.end());
  }
  total.connections = static_cast<uint32_t>(std::min<uint64_t>(connections, UINT32_MAX));
  total.devices.assign(devices.begin(), devices.end());
  return total;
}

void EtcdUserStore::deliverLive() {
  absl::MutexLock deliver(&deliver_mu_);
  SharedStoreListener* listener;
  std::string secret;
  std::vector<LiveCount> totals;
  {
    absl::MutexLock lock(&mu_);
    listener = listener_;
    // Devices compare by the cluster's ids: nothing is given before the secret is known.
    if (listener == nullptr || device_secret_.empty()) return;
    if (device_secret_ != delivered_secret_) secret = device_secret_;
    for (const std::string& name : live_dirty_) totals.push_back(liveTotalLocked(name));
    live_dirty_.clear();
  }
  if (!secret.empty()) {
    listener->applyDeviceKey(secret);
    delivered_secret_ = secret;
  }
  if (!totals.empty()) listener->applyRemoteLive(totals);
}

absl::StatusOr<StoreContents> EtcdUserStore::load() {
  auto range = client_->getPrefix(options_.prefix);
  if (!range.ok()) return range.status();
  absl::MutexLock lock(&mu_);
  resetFromListLocked(*range);
  last_sync_ = absl::Now();
  return contentsLocked();
}

void EtcdUserStore::start(SharedStoreListener* listener) {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable()) return;
  listener_ = listener;
  relist_ = !listed_;  // load() failed: the listener has the cache; give it etcd's state
  thread_ = std::thread([this] { run(); });
}

void EtcdUserStore::stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  watch_.reset();
  flushTraffic();  // what this server counted since the last sync (best effort)
  lease_.reset();
}

bool EtcdUserStore::relist() {
  auto range = client_->getPrefix(options_.prefix);
  if (!range.ok()) return false;
  std::vector<TrafficTotal> totals;
  SharedStoreListener* listener;
  int64_t guard;
  {
    absl::MutexLock lock(&mu_);
    const int64_t before = guard_applied_;
    resetFromListLocked(*range);
    guard = guard_applied_;
    guard_applied_ = before;  // until the listener has it
    std::set<std::string> names;
    for (const auto& [suffix, stored] : config_) {
      if (absl::StartsWith(suffix, kUsers)) names.insert(suffix.substr(kUsers.size()));
    }
    totals = totalsLocked(names);
    listener = listener_;
    relist_ = false;
    last_sync_ = absl::Now();
  }
  SR_LOG(Info, "etcd %s: read everything at revision %d", options_.prefix, range->revision);
  if (listener != nullptr) {
    listener->applyShared([&] { return contentsNow(&guard); });
    listener->applyRemoteTraffic(totals);
  }
  {
    absl::MutexLock lock(&mu_);
    guard_applied_ = std::max(guard_applied_, guard);
    heard_.SignalAll();
  }
  deliverLive();
  return true;
}

StoreContents EtcdUserStore::contentsNow(int64_t* guard) {
  absl::MutexLock lock(&mu_);
  auto it = config_.find(std::string(kGuard));
  *guard = std::max(*guard, it == config_.end() ? int64_t{0} : it->second.mod_revision);
  return contentsLocked();
}

void EtcdUserStore::onUpdate(const etcd::WatchUpdate& update) {
  std::vector<TrafficTotal> totals;
  SharedStoreListener* listener;
  bool config_changed = false;
  int64_t guard = 0;
  {
    absl::MutexLock lock(&mu_);
    last_sync_ = absl::Now();
    if (update.compact_revision > 0) {
      SR_LOG(Warn, "etcd %s: history compacted at revision %d while this server was behind "
                   "(at %d); reading everything again",
             options_.prefix, update.compact_revision, revision_);
      relist_ = true;
      return;
    }
    std::set<std::string> traffic_users;
    for (const etcd::WatchEvent& event : update.events) {
      config_changed = applyLocked(event, &traffic_users) == 1 || config_changed;
    }
    if (update.progress) revision_ = std::max(revision_, update.revision);
    listener = listener_;
    totals = totalsLocked(traffic_users);
  }
  if (listener == nullptr) return;
  if (config_changed) {
    listener->applyShared([&] { return contentsNow(&guard); });
    absl::MutexLock lock(&mu_);
    guard_applied_ = std::max(guard_applied_, guard);
    heard_.SignalAll();
  }
  if (!totals.empty()) listener->applyRemoteTraffic(totals);
  deliverLive();
}

absl::Status EtcdUserStore::write(const StoreContents& after) {
  const std::map<std::string, std::string> desired = desiredConfig(after);
  std::vector<etcd::Op> ops;
  int64_t guard;
  std::string replica;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (!listed_) {
      return absl::UnavailableError(
          absl::StrCat("the user store (", describe(), ") has not answered since this server "
                       "started; changes wait until it does"));
    }
    guard = guard_applied_;
    replica = replica_id_;
    for (const auto& [suffix, value] : desired) {
      auto it = config_.find(suffix);
      if (it != config_.end() && it->second.value == value) continue;
      ops.push_back(putOp(key(suffix), value));
      if (it == config_.end() && absl::StartsWith(suffix, kUsers)) {
        // A new user counts from zero, whatever a late writer left under its name.
        const std::string name = suffix.substr(kUsers.size());
        ops.push_back(deleteOp(key(absl::StrCat(kTraffic, name, "/")), true));
        ops.push_back(deleteOp(key(absl::StrCat(kLive, name, "/")), true));
      }
    }
    for (const auto& [suffix, stored] : config_) {
      if (suffix == kGuard || desired.count(suffix) != 0) continue;
      ops.push_back(deleteOp(key(suffix)));
      if (absl::StartsWith(suffix, kUsers)) {
        const std::string name = suffix.substr(kUsers.size());
        ops.push_back(deleteOp(key(absl::StrCat(kTraffic, name, "/")), true));
        ops.push_back(deleteOp(key(absl::StrCat(kLive, name, "/")), true));
      }
    }
  }
  if (ops.empty()) return absl::OkStatus();
  // Each transaction holds at most kMaxOps changes, and is conditioned on the guard as the
  // previous one left it: the whole change is serialised after what this server heard.
  for (size_t begin = 0; begin < ops.size(); begin += kMaxOps) {
    const size_t end = std::min(ops.size(), begin + kMaxOps);
    std::vector<etcd::Op> chunk(ops.begin() + begin, ops.begin() + end);
    const std::string write_id = newWriteId(replica);
    chunk.push_back(putOp(key(kGuard), write_id));
    // On failure the guard is read: a transaction the client sent again after a connection
    // dropped (etcd_client.cc) may have been made the first time, and then the guard holds
    // its id.
    auto result = client_->txn({compareOp(key(kGuard), etcd::Compare::Target::Mod, guard)},
                               chunk, {getOp(key(kGuard))});
    int64_t revision;
    if (result.ok()) {
      if (!result->succeeded) {
        const bool ours = !result->gets.empty() && !result->gets[0].empty() &&
                          result->gets[0][0].value == write_id;
        if (!ours) {
          return absl::AbortedError(
              "another server changed the user store at the same moment; try again");
        }
        revision = result->gets[0][0].mod_revision;
      } else {
        revision = result->revision;
      }
    } else if (answerMayBeLost(result.status().code())) {
      // Answering UNAVAILABLE here would make the caller's retry of a create that was made
      // find its name taken: find out what happened instead.
      auto made = resolveLostWrite(guard, write_id, result.status());
      if (!made.ok()) return made.status();
      revision = *made;
    } else {
      return result.status();
    }
    guard = revision;
    absl::MutexLock lock(&mu_);
    // The watch has passed this revision already (the answer was late): it applied this
    // change and any that followed (a delete of what this one created), so config_ is newer
    // than what this transaction wrote.
    const bool heard_already = revision_ >= revision;
    // What was written is what this server has heard: its watch events are no news. A key the
    // watch brought at a later revision meanwhile (a change that followed this one while its
    // answer was missing) is newer than what this transaction wrote, and stays.
    for (const etcd::Op& op : chunk) {
      if (heard_already) break;
      absl::string_view suffix = op.key;
      absl::ConsumePrefix(&suffix, options_.prefix);
      auto it = config_.find(std::string(suffix));
      if (it != config_.end() && it->second.mod_revision > revision) continue;
      if (op.kind == etcd::Op::Kind::Put) {
        config_[std::string(suffix)] = Stored{op.value, revision};
      } else if (op.kind == etcd::Op::Kind::Delete) {
        if (it != config_.end()) config_.erase(it);
        if (absl::StartsWith(suffix, kUsers)) {
          const std::string name(suffix.substr(kUsers.size()));
          own_.erase(name);
          own_written_.erase(name);
          own_sent_.erase(name);
          own_first_use_.erase(name);
          own_period_.erase(name);
          period_dirty_.erase(name);
          retired_.erase(name);
          traffic_.erase(name);
        }
      }
    }
    guard_applied_ = std::max(guard_applied_, revision);
    written_at_[revision] = absl::Now();
    while (written_at_.size() > 64) written_at_.erase(written_at_.begin());
  }
  return absl::OkStatus();
}

// How a lost answer is resolved, and why this way. Every configuration transaction is
// conditioned on the guard's mod_revision being `guard` and puts a unique id there, so the lost
// one was made if and only if the first write of the guard after revision `guard` holds its
// id; once the guard has moved past `guard` it can never be made any more. Two things follow:
// - A read alone cannot say "not made": etcd may still hold the request (in a member that
//   forwards it to the leader, or in the leader's log before it is committed) and make it
//   after the read. So the first step is a fence: a transaction with the same condition that
//   puts a fresh id. Exactly one of the two can succeed. If the fence does, the lost one was
//   not made and never will be; the store is as it was but for the guard's id (every server
//   then hears a "change" of nothing, once).
// - If the fence fails, the guard has moved. When it holds our id, our write was the last one.
//   When it holds another, other writes followed (another server heard ours and changed the
//   store, or someone else won): the guard's history is read back, one write at a time, to the
//   first one after `guard` (etcd keeps the history: compactHistory() keeps keep_history).
// Comparing the keys the write touched with `after` instead would not tell a change that
// followed ours (a user deleted right after its create: "not made", and the registry would
// make it again) from ours not being made.
// Not made: ABORTED, which the registry answers as for any change that lost the race: it hears
// the store as it is now and makes the change again from there (a create of a name another
// server took meanwhile is ALREADY_EXISTS then). It cannot be UNAVAILABLE's "nothing written,
// try again later" sent back to the API's caller when the store is known and reachable.
absl::StatusOr<int64_t> EtcdUserStore::resolveLostWrite(int64_t guard, const std::string& write_id,
                                                        const absl::Status& lost) {
  const absl::Time deadline = absl::Now() + kResolveFor;
  std::string replica;
  {
    absl::ReaderMutexLock lock(&mu_);
    replica = replica_id_;
  }
  const etcd::Op get = getOp(key(kGuard));
  std::string unknown = "etcd did not answer";
  for (;;) {
    // A fence whose own answer is lost is resolved by the next one like any other write that
    // is not ours: each puts a fresh id.
    const std::string fence_id = newWriteId(replica);
    auto fence = client_->txn({compareOp(key(kGuard), etcd::Compare::Target::Mod, guard)},
                              {putOp(key(kGuard), fence_id)}, {get});
    if (fence.ok() && fence->succeeded) {
      {
        // The fence changed nothing but the guard, right after the state the listener has
        // (`guard` was guard_applied_): the registry's next try is conditioned on it at once,
        // without waiting for the watch to bring it.
        absl::MutexLock lock(&mu_);
        auto it = config_.find(std::string(kGuard));
        if (it == config_.end() || it->second.mod_revision < fence->revision) {
          config_[std::string(kGuard)] = Stored{fence_id, fence->revision};
        }
        guard_applied_ = std::max(guard_applied_, fence->revision);
      }
      SR_LOG(Warn, "etcd %s: a change whose answer was lost (%s) was not made", options_.prefix,
             lost.message());
      return absl::AbortedError("the user store's answer to this change was lost and the "
                                "change was not made; make it again");
    }
    if (fence.ok()) {
      if (fence->gets.empty() || fence->gets[0].empty()) {
        // The guard was deleted (not by a server: they never delete it): its history from
        // here cannot be followed back.
        unknown = "the user store's config_revision key is gone";
        break;
      }
      const etcd::KeyValue& now = fence->gets[0][0];
      auto first = now.value == write_id ? absl::StatusOr<etcd::KeyValue>(now)
                                         : firstGuardWriteAfter(guard, now, deadline);
      if (first.ok()) {
        if (first->value != write_id) {
          return absl::AbortedError(
              "another server changed the user store at the same moment; try again");
        }
        SR_LOG(Info, "etcd %s: a change whose answer was lost (%s) was made at revision %d",
               options_.prefix, lost.message(), first->mod_revision);
        return first->mod_revision;
      }
      unknown = std::string(first.status().message());
      if (first.status().code() == absl::StatusCode::kOutOfRange) break;  // compacted
    } else {
      unknown = std::string(fence.status().message());
    }
    if (absl::Now() + kResolvePause >= deadline) break;
    absl::SleepFor(kResolvePause);
  }
  SR_LOG(Warn, "etcd %s: a change whose answer was lost (%s) may have been made: %s",
         options_.prefix, lost.message(), unknown);
  return absl::UnavailableError(absl::StrCat(
      lost.message(), "; whether the change was made could not be found out (", unknown,
      "): if it was, every server hears it from the user store when it answers again"));
}

absl::StatusOr<etcd::KeyValue> EtcdUserStore::firstGuardWriteAfter(int64_t guard,
                                                                   etcd::KeyValue latest,
                                                                   absl::Time deadline) {
  for (int step = 0; step < kMaxGuardHistory; ++step) {
    // Nothing between `guard` and the write before `latest`: `latest` is the first.
    if (latest.mod_revision - 1 <= guard) return latest;
    if (absl::Now() >= deadline) break;
    // The guard as it was just before `latest` was written (a key read at a revision; its
    // "prefix" is the key itself plus any longer key, which there is none of).
    auto before = client_->getPrefix(latest.key, latest.mod_revision - 1);
    if (!before.ok()) return before.status();
    auto it = std::find_if(before->kvs.begin(), before->kvs.end(),
                           [&](const etcd::KeyValue& kv) { return kv.key == latest.key; });
    if (it == before->kvs.end() || it->mod_revision <= guard) return latest;
    latest = *it;
  }
  return absl::UnavailableError(absl::StrCat(
      "the user store's configuration changed more than ", kMaxGuardHistory,
      " times since, or reading them took too long"));
}

absl::Status EtcdUserStore::catchUp(absl::Duration timeout) {
  auto got = client_->get(key(kGuard));
  if (!got.ok()) return got.status();
  const int64_t target = got->kvs.empty() ? 0 : got->kvs.front().mod_revision;
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (guard_applied_ < target) {
    if (heard_.WaitWithDeadline(&mu_, deadline)) {
      if (guard_applied_ >= target) break;
      return absl::UnavailableError(absl::StrCat(
          "this server has not heard the user store's latest change (revision ", target,
          ") within ", absl::FormatDuration(timeout), "; try again"));
    }
  }
  return absl::OkStatus();
}

void EtcdUserStore::addTraffic(std::span<const TrafficDelta> deltas) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  for (const TrafficDelta& d : deltas) {
    own_[d.name] += d.delta;
    if (d.delta.tcp_connections != 0 || d.delta.udp_packets != 0) {
      own_first_use_.emplace(d.name, now);  // kept if there is one
    }
  }
}

void EtcdUserStore::startPeriod(absl::string_view name, std::optional<absl::Time> start) {
  absl::MutexLock lock(&mu_);
  const std::string user(name);
  if (!start.has_value()) {
    own_period_.erase(user);
    return;
  }
  auto own = own_.find(user);
  own_period_[user] = OwnPeriod{*start, own == own_.end() ? 0 : own->second.totalBytes()};
  // Written at the next sync even if nothing more is relayed: a period started again with the
  // same start (a quota period set anew within the day) must not leave the key's old bytes
  // counting in it. A key of a new start would not need it; one rewrite per user and period.
  if (own != own_.end()) period_dirty_.insert(user);
}

bool EtcdUserStore::idInUseLocked(const std::string& id) const {
  if (replicas_.count(id) != 0) return true;
  for (const auto& [name, per_id] : traffic_) {
    if (per_id.count(id) != 0) return true;
  }
  for (const auto& [name, per_id] : live_) {
    if (per_id.count(id) != 0) return true;
  }
  return false;
}

std::string EtcdUserStore::freshIdLocked() const {
  std::string id;
  int64_t n = absl::ToUnixMillis(absl::Now()) % 100000;
  do {
    id = absl::StrCat(options_.replica_id, "-", n++);
  } while (idInUseLocked(id));
  return id;
}

bool EtcdUserStore::checkReplicaIdLocked() {
  if (id_checked_ || !listed_) return false;
  // Keys under this id from an earlier process (a --replica-id given again after a restart)
  // hold what that process counted: they are the others' now (folded into _base once its
  // lease is gone), and this process counts under an id of its own.
  id_checked_ = true;
  if (!idInUseLocked(replica_id_)) return false;
  const std::string old = replica_id_;
  replica_id_ = freshIdLocked();
  SR_LOG(Warn, "etcd %s: replica id %s has keys of an earlier server; this one is %s",
         options_.prefix, old, replica_id_);
  return true;
}

void EtcdUserStore::deliverAllTotals() {
  SharedStoreListener* listener;
  std::vector<TrafficTotal> totals;
  {
    absl::MutexLock lock(&mu_);
    listener = listener_;
    std::set<std::string> names;
    for (const auto& [name, per_id] : traffic_) names.insert(name);
    totals = totalsLocked(names);
  }
  if (listener != nullptr && !totals.empty()) listener->applyRemoteTraffic(totals);
}

void EtcdUserStore::registerReplica() {
  bool id_changed;
  {
    absl::MutexLock lock(&mu_);
    if (lease_ != nullptr && !lease_lost_) return;
    id_changed = lease_ == nullptr && checkReplicaIdLocked();
  }
  if (id_changed) deliverAllTotals();  // the earlier server's keys count as the others' now
  if (lease_ != nullptr) {
    // The lease ran out (etcd unreachable longer than its TTL): the old id's counters may be
    // folded into the totals by another server, so they continue under a new id.
    lease_.reset();
    // A write whose answer was lost may have landed: the old key holds what etcd has (final
    // now: every write under the old id is conditioned on its lease). Read where it can be.
    std::vector<std::string> unsure;
    std::string old_id;
    {
      absl::ReaderMutexLock lock(&mu_);
      old_id = replica_id_;
      for (const auto& [name, sent] : own_sent_) unsure.push_back(name);
    }
    std::map<std::string, TrafficCounters> landed;
    for (const std::string& name : unsure) {
      auto got = client_->get(key(absl::StrCat(kTraffic, name, "/", old_id)));
      if (!got.ok() || got->kvs.empty()) continue;  // folded already, or never made: as known
      if (auto value = decodeTraffic(got->kvs.front().value)) landed[name] = value->counters;
    }
    absl::MutexLock lock(&mu_);
    for (const auto& [name, counters] : landed) own_written_[name] = counters;
    own_sent_.clear();
    replica_id_ = freshIdLocked();
    for (auto& [name, counters] : own_) {
      auto written = own_written_.find(name);
      if (written == own_written_.end()) continue;
      counters = minus(counters, written->second);
      // What the old id wrote is in etcd (its key, or _base once folded) and in the
      // listener's own counts too: the others' sums leave it out from now on.
      Retired& retired = retired_[name];
      retired.counters += written->second;
      // The written bytes of the period went to the old key (folded into _base with it):
      // the new key counts the rest.
      if (auto period = own_period_.find(name); period != own_period_.end()) {
        const uint64_t moved = written->second.totalBytes();
        const uint64_t in_period = moved > period->second.base_bytes
                                       ? moved - period->second.base_bytes : 0;
        if (retired.period_start != period->second.start) {
          retired.period_start = period->second.start;
          retired.period_bytes = 0;
        }
        retired.period_bytes += in_period;
        period->second.base_bytes =
            period->second.base_bytes > moved ? period->second.base_bytes - moved : 0;
      }
    }
    own_written_.clear();
    // The sums skip this server's own live/ keys, which are under the new id from now on.
    for (const auto& [name, per_id] : live_) live_dirty_.insert(name);
    lease_lost_ = false;
    SR_LOG(Warn, "etcd %s: this server's lease was lost; it continues as replica %s",
           options_.prefix, replica_id_);
  }
  auto lease = client_->keepLease(options_.lease_ttl_seconds, [this] {
    absl::MutexLock lock(&mu_);
    lease_lost_ = true;
  });
  if (!lease.ok()) return;
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = replica_id_;
  }
  json j = {{"started", absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone())}};
  if (auto put = client_->put(key(absl::StrCat(kReplicas, id)), j.dump(), (*lease)->id());
      !put.ok()) {
    return;  // the lease is revoked when dropped; the next round tries again
  }
  lease_ = *std::move(lease);
}

void EtcdUserStore::flushTraffic() {
  if (lease_ == nullptr) return;
  std::vector<std::pair<std::string, EtcdTrafficValue>> changed;
  std::string id;
  std::vector<etcd::Op> ops;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (lease_lost_) return;
    id = replica_id_;
    auto value = [&](const std::string& name, const TrafficCounters& counters) {
      EtcdTrafficValue v;
      v.counters = counters;
      if (auto first = own_first_use_.find(name); first != own_first_use_.end()) {
        v.first_use = first->second;
      }
      if (auto period = own_period_.find(name); period != own_period_.end()) {
        const uint64_t total = counters.totalBytes();
        v.period_start = period->second.start;
        v.period_bytes = total > period->second.base_bytes ? total - period->second.base_bytes : 0;
      }
      return v;
    };
    for (const auto& [name, counters] : own_) {
      if (config_.count(absl::StrCat(kUsers, name)) == 0) continue;  // deleted meanwhile
      auto written = own_written_.find(name);
      if (written != own_written_.end() && written->second == counters &&
          period_dirty_.count(name) == 0) {
        continue;
      }
      changed.emplace_back(name, value(name, counters));
    }
    for (const auto& [name, v] : changed) {
      ops.push_back(putOp(key(absl::StrCat(kTraffic, name, "/", id)), encodeTraffic(v)));
    }
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, v] : changed) own_sent_[name] = v.counters;  // until answered
  }
  // What is not written is tried again at the next sync, with the newer counts.
  writeOnLease(id, ops, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      own_written_[changed[i].first] = changed[i].second.counters;
      own_sent_.erase(changed[i].first);
      period_dirty_.erase(changed[i].first);
    }
    last_sync_ = absl::Now();
  });
}

void EtcdUserStore::writeOnLease(const std::string& id, const std::vector<etcd::Op>& ops,
                                 absl::FunctionRef<void(size_t, size_t)> written) {
  const etcd::Compare mine =
      compareOp(key(absl::StrCat(kReplicas, id)), etcd::Compare::Target::Lease, lease_->id());
  for (size_t begin = 0; begin < ops.size(); begin += kMaxOps) {
    const size_t end = std::min(ops.size(), begin + kMaxOps);
    auto result =
        client_->txn({mine}, std::vector<etcd::Op>(ops.begin() + begin, ops.begin() + end), {});
    if (!result.ok()) return;
    absl::MutexLock lock(&mu_);
    if (!result->succeeded) {
      lease_lost_ = true;  // our replicas/ key is gone: a new id at the next round
      return;
    }
    written(begin, end);
  }
}

bool EtcdUserStore::ensureDeviceKey() {
  std::string secret;
  bool seen;
  {
    absl::ReaderMutexLock lock(&mu_);
    secret = device_secret_;
    seen = device_key_seen_;
  }
  if (!seen) {
    // Created if absent: of two servers creating it at once one wins and the other reads the
    // winner's. One that had it already (deleted since) puts it back, so ids stay the same.
    const std::string mine = secret.empty() ? crypto::randomBase64Key(32) : secret;
    auto result = client_->txn({compareOp(key(kDeviceKey), etcd::Compare::Target::Create, 0)},
                               {putOp(key(kDeviceKey), mine)}, {getOp(key(kDeviceKey))});
    if (!result.ok()) return !secret.empty();  // the secret known still holds
    std::string winner = mine;
    if (!result->succeeded) {
      winner = result->gets.empty() || result->gets[0].empty() ? std::string()
                                                               : result->gets[0][0].value;
    }
    if (winner.empty()) {
      SR_LOG(Warn, "etcd %s%s: empty; live counts are not shared until it has a value",
             options_.prefix, kDeviceKey);
      return false;
    }
    absl::MutexLock lock(&mu_);
    device_secret_ = winner;
    device_key_seen_ = true;
  }
  deliverLive();
  return true;
}

void EtcdUserStore::publishLive() {
  if (lease_ == nullptr) return;
  SharedStoreListener* listener;
  std::string id;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (lease_lost_) return;
    listener = listener_;
    id = replica_id_;
  }
  // The ids of this server's devices must be the cluster's before they are published.
  if (listener == nullptr || !ensureDeviceKey()) return;
  std::map<std::string, std::string> now;
  for (const LiveCount& live : listener->liveCounts()) now.emplace(live.name, encodeLive(live));
  std::vector<std::pair<std::string, std::optional<std::string>>> changes;  // nullopt: delete
  {
    absl::MutexLock lock(&mu_);
    if (published_lease_ != lease_->id()) {
      published_live_.clear();  // keys on an older lease went with it
      published_lease_ = lease_->id();
    }
    for (const auto& [name, value] : now) {
      auto it = published_live_.find(name);
      if (it == published_live_.end() || it->second != value) changes.emplace_back(name, value);
    }
    for (const auto& [name, value] : published_live_) {
      if (now.count(name) == 0) changes.emplace_back(name, std::nullopt);
    }
  }
  std::vector<etcd::Op> ops;
  for (const auto& [name, value] : changes) {
    std::string k = key(absl::StrCat(kLive, name, "/", id));
    ops.push_back(value.has_value() ? putOp(std::move(k), *value, lease_->id())
                                    : deleteOp(std::move(k)));
  }
  // What is not written is written at the next sync.
  writeOnLease(id, ops, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      if (changes[i].second.has_value()) {
        published_live_[changes[i].first] = *changes[i].second;
      } else {
        published_live_.erase(changes[i].first);
      }
    }
  });
}

void EtcdUserStore::checkSync() {
  // etcd answers, and this server has heard its latest configuration change: in sync (the
  // watch may be quiet for a long time when nothing changes).
  auto got = client_->get(key(kGuard));
  if (!got.ok()) return;
  const int64_t target = got->kvs.empty() ? 0 : got->kvs.front().mod_revision;
  absl::MutexLock lock(&mu_);
  if (guard_applied_ >= target) last_sync_ = absl::Now();
}

void EtcdUserStore::compactHistory() {
  if (options_.keep_history <= absl::ZeroDuration()) return;
  const absl::Time now = absl::Now();
  {
    absl::ReaderMutexLock lock(&mu_);
    if (seen_revisions_.empty() || seen_revisions_.back().second != revision_) {
      seen_revisions_.emplace_back(now, revision_);
    }
  }
  // The newest revision seen at least keep_history ago.
  int64_t target = 0;
  while (!seen_revisions_.empty() && now - seen_revisions_.front().first >= options_.keep_history) {
    target = seen_revisions_.front().second;
    seen_revisions_.pop_front();
  }
  if (target <= compacted_) return;
  const absl::Status s = client_->compact(target);
  // OUT_OF_RANGE: another server compacted as far or further already.
  if (s.ok() || s.code() == absl::StatusCode::kOutOfRange) compacted_ = target;
}

void EtcdUserStore::foldGoneReplicas() {
  // traffic/<name>/<id> of a server whose replicas/<id> key is gone (its lease expired) is
  // folded into traffic/<name>/_base, once: the transaction is conditioned on both keys.
  struct Fold {
    std::string name, id;
    int64_t gone_rev;
    int64_t base_rev;
    EtcdTrafficValue sum;  // _base's value with the gone server's
  };
  std::vector<Fold> folds;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [name, per_id] : traffic_) {
      for (const auto& [id, stored] : per_id) {
        if (id == kBase || id == replica_id_ || replicas_.count(id) != 0) continue;
        auto base = per_id.find(std::string(kBase));
        folds.push_back({name, id, stored.mod_revision,
                         base == per_id.end() ? 0 : base->second.mod_revision,
                         base == per_id.end() ? stored.value
                                              : combine(base->second.value, stored.value)});
        if (folds.size() >= 32) break;  // a few per round: the watch brings the results
      }
      if (folds.size() >= 32) break;
    }
  }
  for (const Fold& f : folds) {
    const etcd::Compare gone =
        compareOp(key(absl::StrCat(kTraffic, f.name, "/", f.id)), etcd::Compare::Target::Mod,
                  f.gone_rev);
    const etcd::Compare base =
        compareOp(key(absl::StrCat(kTraffic, f.name, "/", kBase)), etcd::Compare::Target::Mod,
                  f.base_rev);
    const std::vector<etcd::Op> ops = {putOp(base.key, encodeTraffic(f.sum)), deleteOp(gone.key)};
    if (!client_->txn({gone, base}, ops, {}).ok()) return;
  }
}

void EtcdUserStore::run() {
  absl::Duration backoff = absl::Milliseconds(100);
  absl::Time next_sync = absl::Now() + options_.sync_interval;
  bool loaded;
  {
    absl::MutexLock lock(&mu_);
    loaded = !relist_;  // a relist delivers everything itself
    checkReplicaIdLocked();
  }
  // load() gave the listener the users with the others' totals, but not their bytes per quota
  // period (a restarted server must not forget what a period has used), nor an earlier
  // server's keys under this id. Before the watch starts, so that nothing newer comes first.
  if (loaded) deliverAllTotals();
  for (;;) {
    bool list_again;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      list_again = relist_;
    }
    if (list_again) {
      watch_.reset();  // a compacted watch has ended; an old one must not deliver meanwhile
      if (!relist()) {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
        backoff = std::min(backoff * 2, absl::Seconds(2));
        continue;
      }
      backoff = absl::Milliseconds(100);
    }
    if (watch_ == nullptr) {
      int64_t from;
      {
        absl::ReaderMutexLock lock(&mu_);
        from = revision_ + 1;
      }
      watch_ = client_->watchPrefix(options_.prefix, from,
                                    [this](const etcd::WatchUpdate& u) { onUpdate(u); });
    }
    registerReplica();
    deliverLive();  // what load() read, once the device secret is known
    if (absl::Now() >= next_sync) {
      checkSync();
      flushTraffic();
      publishLive();
      foldGoneReplicas();
      compactHistory();
      // At a fixed rate: a flush of many users takes a while (84 transactions at 10 000
      // users), and counting the interval from its end stretched the period to 6.8 s of 5.
      next_sync += options_.sync_interval;
      if (next_sync <= absl::Now()) next_sync = absl::Now() + options_.sync_interval;
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(this, &EtcdUserStore::wakeLocked), next_sync);
  }
}

EtcdUserStore::Stats EtcdUserStore::stats() const {
  absl::ReaderMutexLock lock(&mu_);
  Stats s;
  s.revision = revision_;
  s.last_sync = last_sync_;
  // checkSync() renews it every sync interval while etcd answers.
  s.up = absl::Now() - last_sync_ < 2 * options_.sync_interval + absl::Seconds(1);
  s.watch_lag_seconds = watch_lag_seconds_;
  s.replica_id = replica_id_;
  absl::MutexLock requests(&requests_mu_);
  s.requests = requests_;
  return s;
}

}  // namespace shadowrelay::api::users
