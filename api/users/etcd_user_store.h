// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/etcd/etcd_client.h"
#include "api/users/shared_store.h"

namespace shadowrelay::api::users {

/// A traffic/<name>/<id> key's value.
struct EtcdTrafficValue {
  TrafficCounters counters;
  std::optional<absl::Time> first_use;  // the first use this server saw
  /// The quota period the key counts (unset: none), and its bytes up and down in it.
  std::optional<absl::Time> period_start;
  uint64_t period_bytes = 0;
};

struct EtcdStoreOptions {
  /// --etcd-prefix: every key lives under it; starts and ends with '/'.
  std::string prefix = "/shadowrelay/";
  /// --replica-id: names this server's traffic and live keys. A new one is taken when the
  /// server's lease was lost (its old keys may have been folded into the totals meanwhile).
  std::string replica_id;
  /// --etcd-sync-interval: how often this server's traffic and live counts are written.
  absl::Duration sync_interval = absl::Seconds(5);
  /// --etcd-lease-ttl: the lease of this server's `replicas/` key.
  int64_t lease_ttl_seconds = 10;
  /// etcd keeps every revision until someone compacts it, and the traffic writes make one per
  /// sync: each server compacts the history older than this (a server cut off for longer
  /// reads everything again when it is back). Zero: never (etcd's --auto-compaction instead).
  absl::Duration keep_history = absl::Minutes(10);
};

/// The SharedStore on etcd (issue 19). Keys under the prefix P:
///
///   P config_revision             written by every configuration change; a change is a
///                                 transaction conditioned on its mod_revision being the one
///                                 this server last heard, so changes are serialised across
///                                 the cluster (a create of a taken name or port loses, hears
///                                 the winner and answers ALREADY_EXISTS). Its value,
///                                 "<replica id>:<random hex>", names the transaction, so a
///                                 write whose answer was lost finds out whether it was made
///   P users/<name>                a user, as users.json writes it, with zero traffic (the field
///                                 stays: servers of the previous version require it, and read
///                                 the keys during a rolling upgrade) and no first use or quota
///                                 period (in traffic/ keys)
///   P defaults                    {"default_method": ...}
///   P identity_keys/<port>/<m>    a port's identity key
///   P replicas/<id>               a live server, on its lease
///   P traffic/<name>/<id>         what server <id> counted for <name>, cumulative: an absolute
///                                 value, so a write retried after a timeout never counts twice;
///                                 with the earliest use it saw and, for a renewing quota, the
///                                 period it counts (its start) and its bytes in it, so that a
///                                 new period is no configuration change
///   P traffic/<name>/_base        what servers that are gone counted (folded in by whichever
///                                 server sees their `replicas/` key gone first, atomically)
///   P live/<name>/<id>            {"connections": n, "devices": [id, ...]}: what server <id> has
///                                 live for a user with max_connections or max_devices, on its
///                                 lease (gone with the server), written at each sync interval
///                                 when it changed, deleted when nothing is live
///   P device_key                  the secret of device ids (relay::DeviceIds), created if
///                                 absent by the first server that publishes live counts
///
/// One watch on P keeps every server's view; a watch whose start was compacted re-lists.
class EtcdUserStore : public SharedStore {
 public:
  /// Makes the client (its observer counts the requests for stats()); connects lazily.
  static absl::StatusOr<std::unique_ptr<EtcdUserStore>> create(etcd::EtcdOptions client_options,
                                                               EtcdStoreOptions options);
  ~EtcdUserStore() override;

  absl::StatusOr<StoreContents> load() override;
  void start(SharedStoreListener* listener) override;
  void stop() override;
  absl::Status write(const StoreContents& after) override;
  absl::Status catchUp(absl::Duration timeout) override;
  void addTraffic(std::span<const TrafficDelta> deltas) override;
  void startPeriod(absl::string_view name, std::optional<absl::Time> start) override;
  std::string describe() const override;

  /// For the shadowrelay_store_* metrics.
  struct Stats {
    bool up = false;  // in sync (etcd answered, nothing unheard) within 2 sync intervals + 1 s
    int64_t revision = 0;            // last revision heard
    absl::Time last_sync = absl::InfinitePast();  // last watch answer or traffic write
    double watch_lag_seconds = 0;    // this server's last write until its watch event
    std::string replica_id;
    /// etcd RPCs by (method, result): result is the gRPC code's name in lower case.
    std::map<std::pair<std::string, std::string>, uint64_t> requests;
  };
  Stats stats() const;

 private:
  explicit EtcdUserStore(EtcdStoreOptions options);
  void countRequest(absl::string_view method, absl::StatusCode code);
  /// After a write's transaction (conditioned on config_revision's mod_revision being `guard`,
  /// putting `write_id` there) got no answer (`lost`): waits (bounded) until etcd tells whether
  /// it was made. @return the revision it was made at; ABORTED if it was not made (and never
  /// will be); UNAVAILABLE if etcd did not tell in time. Any thread but the watch's.
  absl::StatusOr<int64_t> resolveLostWrite(int64_t guard, const std::string& write_id,
                                           const absl::Status& lost) ABSL_LOCKS_EXCLUDED(mu_);
  /// config_revision's first write after revision `guard`, read back through its history from
  /// `latest` (its value now, written after `guard`). OUT_OF_RANGE: that history is compacted.
  absl::StatusOr<etcd::KeyValue> firstGuardWriteAfter(int64_t guard, etcd::KeyValue latest,
                                                      absl::Time deadline);

  struct Stored {
    std::string value;
    int64_t mod_revision = 0;
    /// A users/ key's value decoded, once (contentsLocked() runs at every change, and the
    /// JSON of 10 000 users takes tens of milliseconds to parse).
    std::shared_ptr<const absl::StatusOr<User>> user = nullptr;
  };
  std::string key(absl::string_view suffix) const { return options_.prefix + std::string(suffix); }
  /// Replaces every map with a full read at one revision.
  void resetFromListLocked(const etcd::RangeResult& range) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Applies one key's change. @return 1 for a configuration key, 2 for a traffic key, 3 for a
  /// live key (its user is then in live_dirty_), 0 else.
  int applyLocked(const etcd::WatchEvent& event, std::set<std::string>* traffic_users)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  StoreContents contentsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TrafficCounters othersLocked(const std::string& name) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  /// The earliest first use another server (or one gone) wrote for `name`.
  std::optional<absl::Time> othersFirstUseLocked(const std::string& name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  /// The other servers' (and those gone) bytes of `name` by quota period start.
  std::vector<std::pair<absl::Time, uint64_t>> othersPeriodsLocked(const std::string& name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  std::vector<TrafficTotal> totalsLocked(const std::set<std::string>& names) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  /// The other servers' live counts of `name` together (this server's skipped).
  LiveCount liveTotalLocked(const std::string& name) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  /// Gives the listener the device secret if it is new, then the totals of live_dirty_ (only
  /// once the secret is known). Any thread; never with mu_ held.
  void deliverLive() ABSL_LOCKS_EXCLUDED(mu_, deliver_mu_);
  /// What the listener applies (SharedStoreListener::applyShared() calls it under its write
  /// lock, so a change this server wrote meanwhile is in it); raises *guard to the guard's
  /// revision it holds.
  StoreContents contentsNow(int64_t* guard) ABSL_LOCKS_EXCLUDED(mu_);
  void onUpdate(const etcd::WatchUpdate& update);
  /// Lists and hands the whole state to the listener. @return false if etcd did not answer.
  bool relist();
  void run();
  void registerReplica();
  /// Whether etcd has a replicas/, traffic/ or live/ key of `id`.
  bool idInUseLocked(const std::string& id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  /// The configured id with a suffix no key has yet.
  std::string freshIdLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  /// Once, after the first full read: takes a fresh id if the configured one has keys of an
  /// earlier process. @return whether it did.
  bool checkReplicaIdLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Gives the listener the others' totals of every user with traffic keys (run() thread).
  void deliverAllTotals() ABSL_LOCKS_EXCLUDED(mu_);
  void flushTraffic();
  /// Writes `ops` in transactions of at most kMaxOps, each conditioned on this server's
  /// replicas/<id> key being on its lease (run() thread); after each one `written(begin, end)`
  /// runs with mu_ held. Stops at the first that etcd does not answer or that finds the lease
  /// gone (lease_lost_ is set then).
  void writeOnLease(const std::string& id, const std::vector<etcd::Op>& ops,
                    absl::FunctionRef<void(size_t begin, size_t end)> written)
      ABSL_LOCKS_EXCLUDED(mu_);
  /// Reads (or creates) `device_key` unless the watch has it. @return whether it is known.
  bool ensureDeviceKey();
  /// Writes this server's live counts that changed since the last sync, on its lease.
  void publishLive();
  void foldGoneReplicas();
  void checkSync();
  /// Compacts etcd's history older than keep_history (run() thread).
  void compactHistory();
  bool wakeLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || relist_; }

  const EtcdStoreOptions options_;
  std::unique_ptr<etcd::EtcdClient> client_;
  mutable absl::Mutex requests_mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> requests_ ABSL_GUARDED_BY(requests_mu_);

  mutable absl::Mutex mu_;
  absl::CondVar heard_;  // guard_applied_ moved
  SharedStoreListener* listener_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string replica_id_ ABSL_GUARDED_BY(mu_);
  bool listed_ ABSL_GUARDED_BY(mu_) = false;
  bool relist_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  /// Configuration keys (suffix after the prefix) as this server last heard them.
  std::map<std::string, Stored> config_ ABSL_GUARDED_BY(mu_);
  /// mod_revision of config_revision as the listener has it (0: absent).
  int64_t guard_applied_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  /// traffic/<name>/<id> as heard, with its mod_revision.
  struct StoredTraffic {
    EtcdTrafficValue value;
    int64_t mod_revision = 0;
  };
  std::map<std::string, std::map<std::string, StoredTraffic>> traffic_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> replicas_ ABSL_GUARDED_BY(mu_);
  /// live/<name>/<id> as heard (this server's own included; liveTotalLocked() skips it).
  std::map<std::string, std::map<std::string, LiveCount>> live_ ABSL_GUARDED_BY(mu_);
  /// Users whose totals may have changed since the listener last heard them.
  std::set<std::string> live_dirty_ ABSL_GUARDED_BY(mu_);
  /// device_key's value as last heard or written ("" until then), and whether etcd has it.
  std::string device_secret_ ABSL_GUARDED_BY(mu_);
  bool device_key_seen_ ABSL_GUARDED_BY(mu_) = false;
  /// What this server wrote under live/ (user -> value), on lease published_lease_.
  std::map<std::string, std::string> published_live_ ABSL_GUARDED_BY(mu_);
  int64_t published_lease_ ABSL_GUARDED_BY(mu_) = 0;
  /// One delivery to the listener at a time, so that totals arrive in the order they were
  /// made. Taken before mu_.
  absl::Mutex deliver_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::string delivered_secret_ ABSL_GUARDED_BY(deliver_mu_);
  /// This server's counts since replica_id_ was taken, and what of them is written.
  std::map<std::string, TrafficCounters> own_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TrafficCounters> own_written_ ABSL_GUARDED_BY(mu_);
  /// Sent and not answered (an error: it may have landed or not), by user.
  std::map<std::string, TrafficCounters> own_sent_ ABSL_GUARDED_BY(mu_);
  /// When this server first saw each user used (written with its traffic key).
  std::map<std::string, absl::Time> own_first_use_ ABSL_GUARDED_BY(mu_);
  /// The quota period this server's key of a user counts (startPeriod()): its start, and
  /// own_'s bytes up and down when it began.
  struct OwnPeriod {
    absl::Time start;
    uint64_t base_bytes = 0;
  };
  std::map<std::string, OwnPeriod> own_period_ ABSL_GUARDED_BY(mu_);
  /// Users whose key must be written at the next sync for a period started (startPeriod()).
  std::set<std::string> period_dirty_ ABSL_GUARDED_BY(mu_);
  /// What this server wrote under ids it had before (its lease was lost): in etcd still (the
  /// old key, or _base once folded) and in the listener's own counts, so the others' sums
  /// leave it out. The period bytes are those of the period it last counted.
  struct Retired {
    TrafficCounters counters;
    std::optional<absl::Time> period_start;
    uint64_t period_bytes = 0;
  };
  std::map<std::string, Retired> retired_ ABSL_GUARDED_BY(mu_);
  /// registerReplica() has checked the configured id against etcd's keys.
  bool id_checked_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_sync_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  /// When this server's last write succeeded, by revision: its watch event gives the lag.
  std::map<int64_t, absl::Time> written_at_ ABSL_GUARDED_BY(mu_);
  double watch_lag_seconds_ ABSL_GUARDED_BY(mu_) = 0;

  std::unique_ptr<etcd::EtcdClient::Lease> lease_;  // run() thread only
  bool lease_lost_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<etcd::EtcdClient::Watch> watch_;  // run() thread only
  std::deque<std::pair<absl::Time, int64_t>> seen_revisions_;  // run() thread only
  int64_t compacted_ = 0;                                      // run() thread only
  std::thread thread_;
};

}  // namespace shadowrelay::api::users
