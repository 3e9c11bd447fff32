// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/users/shared_store.h"
#include "api/users/user.h"
#include "api/users/user_store.h"
#include "crypto/key_derivation.h"
#include "crypto/providers.h"
#include "relay/users/device_ids.h"
#include "relay/users/user_table.h"

namespace shadowrelay::api::users {

struct RegistryOptions {
  /// --state-dir: where API users are kept. Empty: API users live in memory only.
  std::string state_dir;
  /// Method for new users that name none (-m without -k). A value set through
  /// setDefaultMethod() is kept in the state directory and wins over this one on restart,
  /// unless default_method_given.
  std::string default_method = "chacha20-ietf-poly1305";
  /// default_method was given explicitly (-m): it wins over a default kept in the store by
  /// SetDefaults. Otherwise the stored one wins.
  bool default_method_given = false;
  /// Users from the configuration file (source Config) and -k/--key (source Default, named
  /// "default"). Read-only through the API; validated by open().
  std::vector<User> configured_users;
  /// The server's shared port: a user asking for it gets the shared port (stored as 0).
  uint16_t shared_port = 8388;
  /// With UDP on the shared port (-u): the method its UDP server was built for at start (-m).
  /// A Shadowsocks 2022 port has a UDP server of its own kind (relay/udp/udp2022_server.h), so
  /// create() and update() refuse a shared-port user of the other generation with
  /// FAILED_PRECONDITION, as they refuse one beside users of the other generation; one loaded
  /// from the store, the configuration or etcd is kept with a warning. Empty: no UDP on the
  /// shared port.
  std::string shared_port_udp_method;
  /// Other ports of this process (control API, metrics): never a user's dedicated port.
  std::vector<uint16_t> reserved_ports;
  /// Extra check for a new dedicated port, e.g. that it can be bound. Returns OK or an error
  /// whose message is passed on (as FAILED_PRECONDITION). Called by create() while changes are
  /// serialised: it must not change the registry.
  std::function<absl::Status(uint16_t port)> port_check;
  /// Whether a dedicated port may run the SIP003 plugin program `plugin` (found, and the server
  /// can put one in front of a port). Null: users may name no plugin.
  std::function<absl::Status(const std::string& plugin)> plugin_check;
  /// Gives each user of the published tables its AEAD provider. Null: users carry none (the
  /// table is not for relaying, e.g. --check-config). Must outlive the registry.
  const crypto::CryptoProviders* providers = nullptr;
  /// The clock for creation times, expiry and quota periods.
  std::function<absl::Time()> now = [] { return absl::Now(); };
  /// --max-users: create() beyond this many users (configured ones included) answers
  /// RESOURCE_EXHAUSTED. 0: no cap.
  size_t max_users = 0;
  /// --device-window: how long a device still counts after its last session or association
  /// ended (RelayUser::device_window of every user).
  std::chrono::seconds device_window{600};
  /// --allow-insecure-ciphers: users may have a legacy stream method (PROTOCOL.md §4), each
  /// alone on its port. Without it such a method is refused (INVALID_ARGUMENT naming the flag).
  bool allow_insecure_ciphers = false;
  /// --default-bytes-per-second: the rate of users whose limits name none (0: unlimited).
  uint64_t default_bytes_per_second = 0;
  /// --etcd-endpoints: the API users, the default method and the identity keys are shared with
  /// other servers through this store (not owned; it must outlive the registry or be stopped
  /// first), and state_dir only caches them. Null: state_dir (or memory) is the store.
  SharedStore* shared_store = nullptr;
};

/// CreateUser's fields.
struct NewUser {
  std::string name;
  std::string method;    // empty: the default method
  std::string password;  // empty with an empty key: a random password is generated
  std::string key;       // raw master key (base64), instead of a password
  uint16_t port = 0;     // 0 or the shared port: the shared port
  bool enabled = true;
  UserLimits limits;
  std::string plugin;  // a dedicated port's SIP003 plugin; empty: none
  std::string plugin_opts;
  std::optional<absl::Time> expire_time;  // unset: never
};

/// UpdateUser's fields: only the ones that are set change.
struct UserUpdate {
  std::optional<std::string> method;
  /// With `key` unset or empty: the new password; an empty one is generated at random.
  std::optional<std::string> password;
  /// Non-empty: switch to this raw key (base64). Empty (with no password): a random password.
  std::optional<std::string> key;
  std::optional<bool> enabled;
  std::optional<uint32_t> max_connections;
  std::optional<uint64_t> data_quota_bytes;
  std::optional<uint32_t> max_devices;
  std::optional<uint64_t> bytes_per_second;
  std::optional<std::string> plugin;  // empty: no plugin
  std::optional<std::string> plugin_opts;
  /// Set: the new expire_time, where an unset inner value means never.
  std::optional<std::optional<absl::Time>> expire_time;
  std::optional<absl::Duration> expire_after_first_use;  // zero: never
  std::optional<QuotaPeriod> data_quota_period;
};

/// The users of the server: configured ones (read-only) and API ones (persisted in the state
/// directory). Every change publishes a new immutable relay::UserTable (what the workers read)
/// to the subscribers.
///
/// A port serves one generation: AEAD-2017 users (any mix of 2017 methods, told apart by trial
/// decryption), or Shadowsocks 2022 users of one method. Several 2022 users on a port (AES
/// methods only: ChaCha has no identity headers, so a ChaCha 2022 port serves one user) send
/// SIP023 identity headers: the port has an identity key (iPSK), which is -k/--key (the user
/// "default") on the shared port, and otherwise a key generated here and kept in the store. Once
/// -k has served as the identity key it never serves as a single PSK on that port again (every
/// user's client has it); the store notes this by the key's hash.
///
/// Thread-safe. Changes are serialised; each one is written to disk before it is applied, so a
/// change that returns OK survives a crash, and one that fails leaves nothing changed.
/// Error codes: INVALID_ARGUMENT (bad name, method, key), ALREADY_EXISTS, NOT_FOUND,
/// FAILED_PRECONDITION (read-only user, port in use, a port of another generation or 2022
/// method), INTERNAL (the store could not be written).
class UserRegistry : public SharedStoreListener {
 public:
  /// Validates the configured users, loads the store (falling back to its previous generation
  /// with a logged warning) and builds the first snapshot (generation 1). Fails, naming the
  /// file, if the store cannot be loaded, or if a stored user clashes with a configured one.
  static absl::StatusOr<std::unique_ptr<UserRegistry>> open(RegistryOptions options);
  /// Writes unsaved traffic counters (best effort; call flush() to see errors).
  ~UserRegistry() override;
  UserRegistry(const UserRegistry&) = delete;
  UserRegistry& operator=(const UserRegistry&) = delete;

  /// @return the new user, with its (possibly generated) password.
  absl::StatusOr<User> create(const NewUser& request);
  absl::StatusOr<User> get(absl::string_view name) const;
  /// Every user, sorted by name, secrets included (the caller strips them).
  std::vector<User> list() const;
  absl::StatusOr<User> update(absl::string_view name, const UserUpdate& update);
  absl::Status remove(absl::string_view name);
  size_t size() const;
  /// --allow-insecure-ciphers: the API offers and accepts the legacy stream methods.
  bool allowsInsecureCiphers() const { return options_.allow_insecure_ciphers; }
  /// The legacy stream methods the users have now (sorted, each once). Thread-safe.
  std::vector<std::string> insecureMethodsInUse() const;

  std::string defaultMethod() const;
  /// @return the canonical name; INVALID_ARGUMENT for an unknown method.
  absl::StatusOr<std::string> setDefaultMethod(absl::string_view method);

  /// The relay reports traffic here (from a flush thread, not from a worker loop). Unknown names
  /// are ignored (the user was removed meanwhile). Counters reach the disk on the next change
  /// or flush(); a user that reaches its data quota gets a new snapshot at once.
  void addTraffic(std::span<const TrafficDelta> deltas);
  void addTraffic(absl::string_view name, const TrafficCounters& delta);
  /// Writes the traffic counters if they changed since the last write.
  absl::Status flush();

  /// SharedStoreListener (with RegistryOptions::shared_store): another server's change, or a
  /// re-list. Replaces the API users, the stored default and the identity keys, keeping this
  /// server's configured users and traffic counters; publishes a table if anything changed
  /// (a removed or changed user's sessions are cut as for a local change).
  void applyShared(absl::FunctionRef<StoreContents()> read) override;
  /// SharedStoreListener: what the other servers counted. A user's traffic (and its data
  /// quota) is then that plus what this server counted since it started.
  void applyRemoteTraffic(std::span<const TrafficTotal> totals) override;
  /// SharedStoreListener: device ids are the cluster's from now on (deviceIds()).
  void applyDeviceKey(const std::string& secret) override;
  /// SharedStoreListener: the other servers' sessions and devices, given to the users' UserLive
  /// (max_connections and max_devices count them; User.devices lists them by id).
  void applyRemoteLive(std::span<const LiveCount> totals) override;
  /// SharedStoreListener: this server's sessions and devices of users with a limit.
  std::vector<LiveCount> liveCounts() const override;
  /// How devices are named outside the process (User.devices, the store): under a random key
  /// of this process, or the cluster's once a shared store gave it. Thread-safe.
  relay::DeviceIdsPtr deviceIds() const;

  /// The current table (never null).
  relay::UserTablePtr snapshot() const;

  /// The registry's clock (RegistryOptions::now).
  absl::Time now() const { return options_.now(); }
  /// The earliest moment the users change by time alone: an expiry or a quota period boundary
  /// still ahead. The infinite future if there is none. Thread-safe.
  absl::Time nextDeadline() const;
  /// Call when nextDeadline() has come (early calls do nothing): starts the quota periods that
  /// began (an over-quota user works again) and publishes a table in which users that reached
  /// their expiry are refused and their sessions cut.
  void tick();
  /// Users by UserState now (index: the enum's value). Thread-safe.
  std::array<size_t, kUserStateCount> countByState() const;
  /// Where one user stands against its data quota (for the metrics; no secrets).
  struct QuotaUsage {
    std::string name;
    uint64_t used_bytes = 0;   // in the current quota period
    uint64_t quota_bytes = 0;  // limits.data_quota_bytes; 0: none
  };
  /// Every user's QuotaUsage, sorted by name. Thread-safe.
  std::vector<QuotaUsage> quotaUsage() const;

  using Subscriber = std::function<void(const relay::UserTablePtr&)>;
  /// Calls `subscriber` at once with the current table, then with every new one, in
  /// generation order, on the thread that made the change. A subscriber must be quick (post to
  /// the workers and return) and must not change the registry; it may call the const methods.
  /// @return an id for unsubscribe().
  uint64_t subscribe(Subscriber subscriber);
  void unsubscribe(uint64_t id);

  /// What a client of `user` puts in its password: the password (2017; empty for a raw key,
  /// which SIP002 cannot carry), the PSK (2022, one user on its port) or "iPSK:uPSK" (2022 with
  /// identity headers). Empty for the -k user of a port whose users send identity headers: -k
  /// is only the identity key there.
  std::string clientPassword(const User& user) const;

  uint16_t sharedPort() const { return shared_port_.load(std::memory_order_relaxed); }
  /// The shared port as bound, when the configuration asked for any free one (port 0): the port
  /// that access URLs and messages name. Call before the control API serves.
  void setSharedPort(uint16_t port) { shared_port_.store(port, std::memory_order_relaxed); }
  /// Where the store is ("" without a state directory).
  std::string storePath() const;

 private:
  struct Entry {
    User user;
    crypto::MasterKey key;
  };
  using Table = std::map<std::string, Entry, std::less<>>;
  /// Identity keys by (port, canonical method).
  using IdentityKeys = std::map<std::pair<uint16_t, std::string>, PortIdentityKey>;
  /// What a change works on, copied, changed, persisted and then made current as a whole.
  struct State {
    Table users;
    std::optional<std::string> persisted_default;  // the default method kept in the store
    IdentityKeys identity_keys;
  };

  explicit UserRegistry(RegistryOptions options)
      : options_(std::move(options)),
        shared_port_(options_.shared_port),
        device_ids_(relay::DeviceIds::random()) {}
  absl::Status checkPortLocked(uint16_t port, absl::string_view name, const Table& table) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  /// FAILED_PRECONDITION unless a user `name` of `method` may be on `port` beside its other
  /// users (one generation, one 2022 method, a ChaCha 2022 user alone); INVALID_ARGUMENT
  /// naming `key_field` for a 2022 key that another user of the port or its iPSK already is.
  absl::Status checkPortPeers(uint16_t port, const crypto::MethodInfo& method,
                              const crypto::MasterKey& key, absl::string_view key_field,
                              absl::string_view name, const State& state) const;
  /// FAILED_PRECONDITION when `port` is the shared port and its UDP server serves the other
  /// generation than `method` (RegistryOptions::shared_port_udp_method).
  absl::Status checkSharedPortUdp(uint16_t port, const crypto::MethodInfo& method) const;
  /// The ports whose clients send identity headers, with their method: those with a 2022 AES
  /// user other than -k's, and the shared port while -k is noted as its identity key.
  std::map<uint16_t, const crypto::MethodInfo*> identityPorts(const State& state) const;
  /// The base64 iPSK of identity port `port`: -k on the shared port, else the generated key.
  std::string identityKeyText(uint16_t port, const crypto::MethodInfo& method,
                              const State& state) const;
  /// Generates the identity keys of ports that now need one (and notes -k where it serves),
  /// drops generated ones no port needs. @return whether state.identity_keys changed.
  bool updateIdentityKeys(State& state) const;
  /// For update/remove: a copy of the state when `name` is an API user; NOT_FOUND or
  /// FAILED_PRECONDITION (read-only) otherwise. Takes mu_.
  absl::Status copyForChange(absl::string_view name, State* state) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  /// Adds a configured or stored user to `state` after validating it (name, method, key, port,
  /// plugin, port peers).
  absl::Status addEntry(State& state, User user) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  /// What the store keeps of `state`: API users, persisted default, identity keys.
  static StoreContents contentsOf(const State& state);
  absl::StatusOr<User> createOnce(const NewUser& request);
  absl::StatusOr<User> updateOnce(absl::string_view name, const UserUpdate& update);
  absl::Status removeOnce(absl::string_view name);
  absl::StatusOr<std::string> setDefaultMethodOnce(absl::string_view method);
  /// Runs a change (create, update, remove, set default) and, when a shared store says another
  /// server changed it first (ABORTED), waits for that change and runs it again (a few times).
  template <typename Result, typename Change>
  Result retryShared(Change change);
  /// Persists `state`, then makes it current and (with `publish`) publishes a new table.
  absl::Status commit(State state, bool publish) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  absl::Status persist(const State& state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  /// Copies into `table` the traffic (and first use) counted since it was copied from
  /// state_.users. @return true if an API user's counters were newer (so still unsaved).
  bool mergeTrafficLocked(Table& table) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  /// Also sets next_deadline_ from the users and the clock, and gives users new in the table
  /// what the other servers have live for them.
  relay::UserTablePtr buildSnapshotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Gives `user` (of the current or a new table) the other servers' live counts `live`.
  void setRemoteLiveLocked(const relay::RelayUser& user, const LiveCount& live) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void publish(const relay::UserTablePtr& snapshot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  /// A new table from the current state (a quota crossed by traffic), published.
  void republish() ABSL_LOCKS_EXCLUDED(write_mu_, mu_);

  const RegistryOptions options_;
  std::atomic<uint16_t> shared_port_;  // options_.shared_port, or the one bound for port 0
  std::unique_ptr<UserStore> store_;  // null without a state directory

  // Lock order: write_mu_, then mu_. Readers take only mu_, so subscribers may read.
  absl::Mutex write_mu_;  // serialises changes, disk writes and publication
  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_);
  std::string default_method_ ABSL_GUARDED_BY(mu_);
  relay::UserTablePtr snapshot_ ABSL_GUARDED_BY(mu_);
  uint64_t snapshot_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool traffic_dirty_ ABSL_GUARDED_BY(mu_) = false;
  /// With a shared store: per user, what this server counted since it started and what the
  /// others counted (User::traffic is their sum).
  struct SplitTraffic {
    TrafficCounters local;
    TrafficCounters remote;
    /// A renewing quota: the period this server counts (User::quota_period_start when it
    /// began here), local's bytes then, and the others' bytes by period (TrafficTotal).
    std::optional<absl::Time> period_start;
    uint64_t local_period_base = 0;
    std::vector<std::pair<absl::Time, uint64_t>> remote_periods;
  };
  /// With a shared store, for an API user: starts the user's quota period on this server and
  /// in the store if it is new here, and sets quota_base_bytes so that the quota counts this
  /// server's bytes in the period and the others' (no server writes a period to the store's
  /// configuration: at a boundary every server starts it by itself).
  void sharedQuotaLocked(User& user) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// sharedQuotaLocked() for every API user of state_ (after a change of the table).
  void sharedQuotasLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::map<std::string, SplitTraffic, std::less<>> split_traffic_ ABSL_GUARDED_BY(mu_);
  absl::Time next_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  relay::DeviceIdsPtr device_ids_ ABSL_GUARDED_BY(mu_);
  /// With a shared store: what the other servers have live, by user (only users with some).
  std::map<std::string, LiveCount, std::less<>> remote_live_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Subscriber> subscribers_ ABSL_GUARDED_BY(write_mu_);
  uint64_t next_subscriber_ ABSL_GUARDED_BY(write_mu_) = 1;
};

}  // namespace shadowrelay::api::users
