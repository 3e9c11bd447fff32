// SPDX-License-Identifier: Apache-2.0
#pragma once
// A client of etcd's v3 gRPC API (KV, Watch, Lease, Maintenance.Status, Auth.Authenticate) for
// the shared user store (issue 19; docs/etcd/RESEARCH.md has the measured facts it relies on).
// One gRPC channel per endpoint: calls go to the current endpoint and rotate to the next one on
// UNAVAILABLE or a deadline. Thread-safe; watches and kept leases run on threads of their own.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shadowrelay::api::etcd {

struct EtcdOptions {
  std::vector<std::string> endpoints;        // "http://127.0.0.1:2379", "https://..."
  std::string ca_file, cert_file, key_file;  // PEM paths; https only
  std::string user, password;                // empty user: no auth
  absl::Duration request_timeout = absl::Seconds(2);  // every unary call; expiry -> UNAVAILABLE
  // Called after every RPC: method ("range","txn","put","delete","compact","lease_grant",
  // "lease_revoke","lease_keepalive","watch","status","authenticate") and the final code.
  // Called from the calling thread, or from a watch's or lease's thread: must be thread-safe.
  std::function<void(absl::string_view method, absl::StatusCode code)> observer;
};

struct KeyValue {
  std::string key, value;
  int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};

struct RangeResult {
  int64_t revision = 0;  // the revision the range was read at (header.revision of the first page)
  std::vector<KeyValue> kvs;
};

struct Compare {
  enum class Target { Version, Create, Mod, Value, Lease };
  enum class Result { Equal, Greater, Less, NotEqual };
  std::string key;
  Target target = Target::Mod;
  Result result = Result::Equal;
  int64_t number = 0;  // for Version/Create/Mod/Lease
  std::string value;   // for Value
};

struct Op {
  enum class Kind { Put, Delete, DeletePrefix, Get, GetPrefix };
  Kind kind = Kind::Put;
  std::string key, value;
  int64_t lease = 0;
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;
  std::vector<std::vector<KeyValue>> gets;  // one per Get/GetPrefix op of the branch run, in order
};

struct WatchEvent {
  enum class Type { Put, Delete } type = Type::Put;
  KeyValue kv;  // a Delete carries the key and its mod_revision (the deletion's revision)
};

struct WatchUpdate {
  int64_t revision = 0;            // header.revision
  std::vector<WatchEvent> events;  // one WatchResponse (a txn's events come together)
  bool progress = false;           // an empty progress notification
  int64_t compact_revision = 0;    // > 0: the start revision was compacted; the watch ENDED:
                                   // re-list and watch again from the new revision + 1
};

class EtcdClient {  // thread-safe
 public:
  /// Checks the options (endpoint URLs, readable PEM files) and makes the channels; does not
  /// contact etcd (a replica must start while etcd is down). Errors: INVALID_ARGUMENT.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> create(EtcdOptions options);
  /// Watches and leases hold the client's internals and stop when they are destroyed, before
  /// or after the client. The last of them to go stops the thread that keeps the channels
  /// connecting (at most 100 ms).
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // Linearizable by default; serializable=true answers from the member's copy (quorum lost).
  absl::StatusOr<RangeResult> get(const std::string& key, bool serializable = false);
  // Paged (500 keys a page), all pages at one revision: `revision`, or the first page's.
  absl::StatusOr<RangeResult> getPrefix(const std::string& prefix, int64_t revision = 0,
                                        bool serializable = false);
  absl::StatusOr<TxnResult> txn(const std::vector<Compare>& compares,
                                const std::vector<Op>& success, const std::vector<Op>& failure);
  absl::StatusOr<int64_t> put(const std::string& key, const std::string& value,
                              int64_t lease = 0);  // returns the revision
  absl::StatusOr<int64_t> deletePrefix(const std::string& prefix);  // returns the revision
  absl::Status compact(int64_t revision);
  absl::StatusOr<int64_t> grantLease(int64_t ttl_seconds);
  absl::Status revokeLease(int64_t id);

  class Lease {
   public:
    virtual ~Lease() = default;  // stops the refreshes (joins) and revokes (best effort)
    virtual int64_t id() const = 0;
    virtual bool alive() const = 0;
  };
  // Grants a lease and keeps it alive (keepalive stream, every ttl/3, rotating endpoints).
  // on_lost is called once (from the client's thread) when the lease is gone (TTL <= 0, or no
  // successful refresh until it would have expired). on_lost must not destroy the Lease.
  absl::StatusOr<std::unique_ptr<Lease>> keepLease(int64_t ttl_seconds,
                                                   std::function<void()> on_lost);

  class Watch {
   public:
    virtual ~Watch() = default;  // destroying it stops it (joins); not from on_update
  };
  // Watches [prefix, prefixEnd(prefix)) from start_revision, with "hasleader: true" metadata and
  // progress notifications. When the stream ends (member died, no leader, etcd down) it
  // reconnects with backoff (100 ms .. 1 s, rotating endpoints) from the last revision seen + 1:
  // no event lost, none doubled. Updates arrive in revision order on the watch's own thread.
  std::unique_ptr<Watch> watchPrefix(const std::string& prefix, int64_t start_revision,
                                     std::function<void(const WatchUpdate&)> on_update);

  // Test and bench helper: Maintenance.Status of one endpoint (leader id, member id, revision).
  struct MemberStatus {
    uint64_t member_id = 0, leader = 0;
    int64_t revision = 0;
  };
  absl::StatusOr<MemberStatus> status(const std::string& endpoint);

  class Core;  // the channels, the auth token and the RPC plumbing (etcd_client.cc)

 private:
  explicit EtcdClient(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

std::string prefixEnd(absl::string_view prefix);  // last byte + 1 ("\0" when there is none)

}  // namespace shadowrelay::api::etcd
