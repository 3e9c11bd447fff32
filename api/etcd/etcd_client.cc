// SPDX-License-Identifier: Apache-2.0
#include "api/etcd/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "api/etcd/etcd_v3.grpc.pb.h"

namespace shadowrelay::api::etcd {

namespace pb = ::etcdserverpb;

namespace {

constexpr int kMaxReceiveBytes = 64 << 20;  // a watch response can carry many events
constexpr int64_t kPageSize = 500;
// Watch reconnects: first wait, cap (EtcdClient::watchPrefix's contract).
constexpr absl::Duration kWatchBackoffMin = absl::Milliseconds(100);
constexpr absl::Duration kWatchBackoffMax = absl::Seconds(1);
// A keepalive that failed is tried again on the next endpoint after this long (or the lease's
// refresh interval, when shorter), until the lease would have expired.
constexpr absl::Duration kLeaseRetry = absl::Milliseconds(250);
// How long one wait for a channel's state change lasts: the longest a client's destruction
// waits for its connectivity thread (the waits cannot be cancelled).
constexpr absl::Duration kStateWatch = absl::Milliseconds(100);
// getPrefix at "now": a compaction between two pages restarts the listing this many times.
constexpr int kRelistAttempts = 3;

absl::StatusOr<std::string> readFile(const std::string& field, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat("etcd: ", field, ": cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

KeyValue fromProto(const pb::KeyValue& kv) {
  KeyValue out;
  out.key = kv.key();
  out.value = kv.value();
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.lease = kv.lease();
  return out;
}

std::vector<KeyValue> fromProto(const google::protobuf::RepeatedPtrField<pb::KeyValue>& kvs) {
  std::vector<KeyValue> out;
  out.reserve(kvs.size());
  for (const pb::KeyValue& kv : kvs) {
    out.push_back(fromProto(kv));
  }
  return out;
}

/// The key a prefix range starts at: etcd reads key "\0" with range_end "\0" as "every key".
std::string rangeStart(const std::string& prefix) {
  return prefix.empty() ? std::string(1, '\0') : prefix;
}

/// The call's deadline passed: ours, or the same one as etcd saw it (gRPC sends the deadline;
/// when etcd's copy fires first it answers UNKNOWN "context deadline exceeded", measured).
bool isDeadline(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         (status.error_code() == grpc::StatusCode::UNKNOWN &&
          absl::StrContains(status.error_message(), "context deadline exceeded"));
}

bool isTransportFailure(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE || isDeadline(status);
}

}  // namespace

std::string prefixEnd(absl::string_view prefix) {
  std::string end(prefix);
  for (size_t i = end.size(); i > 0; --i) {
    if (static_cast<unsigned char>(end[i - 1]) < 0xff) {
      end[i - 1] = static_cast<char>(static_cast<unsigned char>(end[i - 1]) + 1);
      end.resize(i);
      return end;
    }
  }
  return std::string(1, '\0');  // no byte to increment: to the end of the key space
}

// One etcd member as the client reaches it: its URL, a channel and the stubs on it.
struct Endpoint {
  std::string url;  // as configured
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Maintenance::Stub> maintenance;
  std::unique_ptr<pb::Auth::Stub> auth;
};

// What the client, its watches and its leases share: the endpoints, which one is current, the
// auth token and the retry rules of unary calls. Thread-safe.
class EtcdClient::Core {
 public:
  // Unary calls are retried on the next endpoint after a transport failure when that is safe:
  // reads always, writes only when the request cannot have reached etcd.
  enum class Kind { Read, Write };

  Core(EtcdOptions options, std::vector<Endpoint> endpoints)
      : options_(std::move(options)), endpoints_(std::move(endpoints)) {
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      watchState(i);
    }
    connector_ = std::thread([this] { driveConnections(); });
  }
  ~Core() {
    {
      absl::MutexLock lock(&connectivity_mu_);
      stopping_ = true;
      connectivity_.Shutdown();  // pending notifications end at their deadline (kStateWatch)
    }
    connector_.join();
  }

  const EtcdOptions& options() const { return options_; }
  size_t size() const { return endpoints_.size(); }
  Endpoint& endpoint(size_t index) { return endpoints_[index]; }
  std::optional<size_t> find(const std::string& url) const {
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      if (endpoints_[i].url == url) {
        return i;
      }
    }
    return std::nullopt;
  }

  size_t current() const { return current_.load(std::memory_order_relaxed) % endpoints_.size(); }
  /// Moves off `index` after it failed; concurrent failures of one endpoint move once.
  void rotateFrom(size_t index) {
    size_t expected = index;
    current_.compare_exchange_strong(expected, (index + 1) % endpoints_.size(),
                                     std::memory_order_relaxed);
  }

  void observe(absl::string_view method, absl::StatusCode code) const {
    if (options_.observer) {
      options_.observer(method, code);
    }
  }

  /// The gRPC status as the client's callers see it: a transport failure or a deadline becomes
  /// UNAVAILABLE naming the endpoint; etcd's own errors keep their code.
  absl::Status toStatus(const grpc::Status& status, absl::string_view method,
                        const Endpoint& ep) const {
    if (status.ok()) {
      return absl::OkStatus();
    }
    if (isDeadline(status)) {
      return absl::UnavailableError(absl::StrCat("etcd ", method, " at ", ep.url,
                                                 ": no answer within the deadline"));
    }
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("etcd ", method, " at ", ep.url, ": ",
                                     status.error_message()));
  }

  bool authEnabled() const { return !options_.user.empty(); }

  /// Adds the auth token (authenticating first when there is none yet) to `ctx`. Returns the
  /// token used (empty without auth), to drop it if etcd says it is no longer valid.
  absl::StatusOr<std::string> addToken(grpc::ClientContext& ctx, size_t index,
                                       absl::Time deadline) {
    if (!authEnabled()) {
      return std::string();
    }
    absl::MutexLock lock(&token_mu_);
    if (token_.empty()) {
      // Under the lock: concurrent first calls authenticate once.
      Endpoint& ep = endpoints_[index];
      grpc::ClientContext auth_ctx;
      auth_ctx.set_deadline(absl::ToChronoTime(deadline));
      pb::AuthenticateRequest req;
      req.set_name(options_.user);
      req.set_password(options_.password);
      pb::AuthenticateResponse resp;
      const grpc::Status status = ep.auth->Authenticate(&auth_ctx, req, &resp);
      absl::Status result = toStatus(status, "authenticate", ep);
      observe("authenticate", result.code());
      if (!result.ok()) {
        return absl::Status(result.code(), absl::StrCat("as user ", options_.user, ": ",
                                                        result.message()));
      }
      token_ = resp.token();
    }
    ctx.AddMetadata("token", token_);
    return token_;
  }

  void dropToken(const std::string& used) {
    absl::MutexLock lock(&token_mu_);
    if (token_ == used) {
      token_.clear();
    }
  }

  /// One unary call with the retry rules above, within options().request_timeout. `call` is
  /// `grpc::Status(Endpoint&, grpc::ClientContext*)` and must reset its response. `only`: call
  /// that endpoint alone (status()).
  template <typename Call>
  absl::Status unary(absl::string_view method, Kind kind, const Call& call,
                     std::optional<size_t> only = std::nullopt) {
    const absl::Time deadline = absl::Now() + options_.request_timeout;
    const size_t tries = only ? 1 : endpoints_.size();
    const size_t first = only ? *only : current();
    std::vector<std::string> failures;
    bool reauthenticated = false;
    for (size_t attempt = 0; attempt < tries;) {
      const size_t index = (first + attempt) % endpoints_.size();
      Endpoint& ep = endpoints_[index];
      const absl::Time now = absl::Now();
      if (now >= deadline) {
        break;
      }
      // A read leaves time for the endpoints after this one: a member that lost quorum holds a
      // linearizable read until the deadline, and the next member may answer at once.
      const absl::Time attempt_deadline =
          kind == Kind::Read ? now + (deadline - now) / static_cast<int64_t>(tries - attempt)
                             : deadline;
      const grpc_connectivity_state before = ep.channel->GetState(false);
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(attempt_deadline));
      absl::StatusOr<std::string> token = addToken(ctx, index, attempt_deadline);
      if (!token.ok()) {
        if (token.status().code() != absl::StatusCode::kUnavailable) {
          return token.status();
        }
        // Authenticate is an RPC of its own: the request below was never sent.
        failures.emplace_back(token.status().message());
        if (!only) {
          rotateFrom(index);
        }
        ++attempt;
        continue;
      }
      const grpc::Status status = call(ep, &ctx);
      absl::Status result = toStatus(status, method, ep);
      observe(method, result.code());
      if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED && authEnabled() &&
          !reauthenticated) {
        // The token expired (simple tokens live 5 min unused) or the auth store changed.
        reauthenticated = true;
        dropToken(*token);
        continue;
      }
      if (!isTransportFailure(status)) {
        return result;
      }
      failures.emplace_back(result.message());
      if (!only) {
        rotateFrom(index);
      }
      // A write that may have reached etcd is not sent again: the caller cannot tell it from a
      // second write. One refused before a connection existed cannot have.
      const bool unsent = status.error_code() == grpc::StatusCode::UNAVAILABLE &&
                          before != GRPC_CHANNEL_READY;
      if (kind == Kind::Write && !unsent) {
        return result;
      }
      ++attempt;
    }
    if (failures.empty()) {
      failures.push_back(absl::StrCat("etcd ", method, ": no time left"));
    }
    return absl::UnavailableError(absl::StrJoin(failures, "; "));
  }

 private:
  // Keeps every channel connecting and its connection attempts completing. The synchronous API
  // polls a channel's sockets only while a call waits on it: after a call failed fast on a
  // member that was down, nothing would notice its coming back but gRPC's backup poller, every
  // 5 s (measured: a restarted cluster unreachable for 5-10 s). A thread waiting for the
  // channels' state changes polls them, and asks an idle channel to connect.
  void driveConnections() {
    void* tag = nullptr;
    bool ok = false;
    while (connectivity_.Next(&tag, &ok)) {
      absl::MutexLock lock(&connectivity_mu_);  // no new wait once the queue is shut down
      if (!stopping_) {
        watchState(reinterpret_cast<uintptr_t>(tag));
      }
    }
  }
  void watchState(size_t index) {
    grpc::Channel& channel = *endpoints_[index].channel;
    channel.NotifyOnStateChange(channel.GetState(/*try_to_connect=*/true),
                                absl::ToChronoTime(absl::Now() + kStateWatch), &connectivity_,
                                reinterpret_cast<void*>(static_cast<uintptr_t>(index)));
  }

  const EtcdOptions options_;
  std::vector<Endpoint> endpoints_;
  grpc::CompletionQueue connectivity_;
  absl::Mutex connectivity_mu_;
  bool stopping_ ABSL_GUARDED_BY(connectivity_mu_) = false;
  std::thread connector_;  // after everything it uses
  std::atomic<size_t> current_{0};
  absl::Mutex token_mu_;
  std::string token_ ABSL_GUARDED_BY(token_mu_);
};

namespace {

using Core = EtcdClient::Core;

/// The endpoint's channel: http → plain, https → TLS with the CA and the client certificate.
absl::StatusOr<Endpoint> makeEndpoint(const std::string& url,
                                      const grpc::SslCredentialsOptions& tls) {
  std::string target;
  bool secure = false;
  if (absl::StartsWith(url, "http://")) {
    target = url.substr(7);
  } else if (absl::StartsWith(url, "https://")) {
    target = url.substr(8);
    secure = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd: endpoint '", url, "' is not http://host:port or https://host:port"));
  }
  if (!target.empty() && target.back() == '/') {
    target.pop_back();
  }
  if (target.empty() || target.find('/') != std::string::npos ||
      target.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd: endpoint '", url, "' is not http://host:port or https://host:port"));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  // A member that comes back is found within a second (gRPC's default backoff reaches 2 min).
  // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: it is also the connect timeout, and a restarting
  // etcd can take longer than that to send its first HTTP/2 SETTINGS (measured: every attempt
  // then failed with "tcp handshaker shutdown").
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // A silent watch on a member that vanished (no RST) ends within 15 s. etcd refuses pings
  // closer than 5 s (--grpc-keepalive-min-time).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Each client its own connections: two clients (two replicas in a test) stay independent.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  Endpoint ep;
  ep.url = url;
  ep.channel = grpc::CreateCustomChannel(
      target, secure ? grpc::SslCredentials(tls) : grpc::InsecureChannelCredentials(), args);
  ep.kv = pb::KV::NewStub(ep.channel);
  ep.watch = pb::Watch::NewStub(ep.channel);
  ep.lease = pb::Lease::NewStub(ep.channel);
  ep.maintenance = pb::Maintenance::NewStub(ep.channel);
  ep.auth = pb::Auth::NewStub(ep.channel);
  return ep;
}

void toProto(const Op& op, pb::RequestOp* out) {
  switch (op.kind) {
    case Op::Kind::Put: {
      pb::PutRequest* put = out->mutable_request_put();
      put->set_key(op.key);
      put->set_value(op.value);
      put->set_lease(op.lease);
      break;
    }
    case Op::Kind::Delete:
      out->mutable_request_delete_range()->set_key(op.key);
      break;
    case Op::Kind::DeletePrefix: {
      pb::DeleteRangeRequest* del = out->mutable_request_delete_range();
      del->set_key(rangeStart(op.key));
      del->set_range_end(prefixEnd(op.key));
      break;
    }
    case Op::Kind::Get:
      out->mutable_request_range()->set_key(op.key);
      break;
    case Op::Kind::GetPrefix: {
      pb::RangeRequest* range = out->mutable_request_range();
      range->set_key(rangeStart(op.key));
      range->set_range_end(prefixEnd(op.key));
      break;
    }
  }
}

void toProto(const Compare& compare, pb::Compare* out) {
  out->set_key(compare.key);
  switch (compare.result) {
    case Compare::Result::Equal:
      out->set_result(pb::Compare::EQUAL);
      break;
    case Compare::Result::Greater:
      out->set_result(pb::Compare::GREATER);
      break;
    case Compare::Result::Less:
      out->set_result(pb::Compare::LESS);
      break;
    case Compare::Result::NotEqual:
      out->set_result(pb::Compare::NOT_EQUAL);
      break;
  }
  switch (compare.target) {
    case Compare::Target::Version:
      out->set_target(pb::Compare::VERSION);
      out->set_version(compare.number);
      break;
    case Compare::Target::Create:
      out->set_target(pb::Compare::CREATE);
      out->set_create_revision(compare.number);
      break;
    case Compare::Target::Mod:
      out->set_target(pb::Compare::MOD);
      out->set_mod_revision(compare.number);
      break;
    case Compare::Target::Value:
      out->set_target(pb::Compare::VALUE);
      out->set_value(compare.value);
      break;
    case Compare::Target::Lease:
      out->set_target(pb::Compare::LEASE);
      out->set_lease(compare.number);
      break;
  }
}

// Something a thread waits for that its owner can end early: the current stream's context is
// cancelled and the sleep cut short. The owner calls stop() before joining.
class Stopper {
 public:
  /// Registers the context of the stream about to start; false when stopping (do not start).
  bool attach(grpc::ClientContext* ctx) {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      return false;
    }
    context_ = ctx;
    return true;
  }
  void detach() {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
  }
  void stop() {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) {
      context_->TryCancel();
    }
  }
  bool stopping() {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }
  /// Sleeps `d` unless stopped first; true when stopped.
  bool sleepFor(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
    return stopping_;
  }

 private:
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// EtcdClient::watchPrefix: one Watch stream at a time on its own thread, reopened from the
// revision after the last one delivered.
class PrefixWatch final : public EtcdClient::Watch {
 public:
  PrefixWatch(std::shared_ptr<Core> core, std::string prefix, int64_t start_revision,
              std::function<void(const WatchUpdate&)> on_update)
      : core_(std::move(core)),
        prefix_(std::move(prefix)),
        on_update_(std::move(on_update)),
        next_revision_(start_revision) {
    thread_ = std::thread([this] { run(); });
  }
  ~PrefixWatch() override {
    stopper_.stop();
    thread_.join();
  }

 private:
  enum class Outcome { Ended, Stopped, Broken };
  // What to do after a response: read on, end this stream and open another, or end the watch.
  enum class Next { Read, Reopen, End };

  void run() {
    absl::Duration backoff = kWatchBackoffMin;
    while (true) {
      const size_t index = core_->current();
      bool connected = false;
      if (streamOnce(index, &connected) != Outcome::Broken) {
        return;
      }
      core_->rotateFrom(index);
      if (connected) {
        backoff = kWatchBackoffMin;
      }
      if (stopper_.sleepFor(backoff)) {
        return;
      }
      backoff = std::min(backoff * 2, kWatchBackoffMax);
    }
  }

  Outcome streamOnce(size_t index, bool* connected) {
    Endpoint& ep = core_->endpoint(index);
    grpc::ClientContext ctx;
    // Without it a member that lost quorum keeps the stream open and silent (RESEARCH.md §2).
    ctx.AddMetadata("hasleader", "true");
    absl::StatusOr<std::string> token =
        core_->addToken(ctx, index, absl::Now() + core_->options().request_timeout);
    if (!token.ok()) {
      return stopper_.stopping() ? Outcome::Stopped : Outcome::Broken;
    }
    if (!stopper_.attach(&ctx)) {
      return Outcome::Stopped;
    }
    std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream =
        ep.watch->Watch(&ctx);
    pb::WatchRequest req;
    pb::WatchCreateRequest* create = req.mutable_create_request();
    create->set_key(rangeStart(prefix_));
    create->set_range_end(prefixEnd(prefix_));
    create->set_start_revision(next_revision_);
    create->set_progress_notify(true);
    Next next = Next::Read;
    absl::StatusCode code = absl::StatusCode::kOk;  // set when we end the stream ourselves
    if (stream->Write(req)) {
      pb::WatchResponse resp;
      while (next == Next::Read && stream->Read(&resp)) {
        next = onResponse(resp, *token, connected, &code);
      }
    }
    if (next != Next::Read) {
      ctx.TryCancel();  // etcd keeps a stream open after cancelling a watch on it
    }
    const grpc::Status status = stream->Finish();
    stopper_.detach();
    if (stopper_.stopping()) {
      return Outcome::Stopped;
    }
    if (code == absl::StatusCode::kOk) {
      code = core_->toStatus(status, "watch", ep).code();
      if (code == absl::StatusCode::kOk) {
        code = absl::StatusCode::kUnavailable;  // etcd ended a stream we did not end
      }
    }
    core_->observe("watch", code);
    return next == Next::End ? Outcome::Ended : Outcome::Broken;
  }

  /// Handles one response, delivering what it carries. Sets *code when the stream must end
  /// because etcd cancelled the watch.
  Next onResponse(const pb::WatchResponse& resp, const std::string& token, bool* connected,
                  absl::StatusCode* code) {
    if (resp.canceled()) {
      if (resp.compact_revision() > 0) {
        WatchUpdate update;
        update.revision = resp.header().revision();
        update.compact_revision = resp.compact_revision();
        *code = absl::StatusCode::kOutOfRange;
        on_update_(update);
        return Next::End;
      }
      // Refused ("permission denied": the token is no longer valid) or cancelled for another
      // reason of etcd's: authenticate again and reopen.
      core_->dropToken(token);
      *code = absl::StrContains(resp.cancel_reason(), "permission")
                  ? absl::StatusCode::kPermissionDenied
                  : absl::StatusCode::kCancelled;
      return Next::Reopen;
    }
    if (resp.created()) {
      *connected = true;
      if (next_revision_ == 0) {
        // "From now": a reconnect must resume after the revision this watch started at.
        next_revision_ = resp.header().revision() + 1;
      }
      return Next::Read;
    }
    WatchUpdate update;
    update.revision = resp.header().revision();
    if (resp.events_size() == 0) {
      // A progress notification: every event up to header.revision has been delivered.
      update.progress = true;
      next_revision_ = std::max(next_revision_, update.revision + 1);
      on_update_(update);
      return Next::Read;
    }
    for (const pb::Event& event : resp.events()) {
      if (event.kv().mod_revision() < next_revision_) {
        continue;  // already delivered before a reconnect
      }
      WatchEvent out;
      out.type = event.type() == pb::Event::DELETE ? WatchEvent::Type::Delete
                                                   : WatchEvent::Type::Put;
      out.kv = fromProto(event.kv());
      update.events.push_back(std::move(out));
    }
    if (!update.events.empty()) {
      next_revision_ = update.events.back().kv.mod_revision + 1;
      on_update_(update);
    }
    return Next::Read;
  }

  std::shared_ptr<Core> core_;
  const std::string prefix_;
  const std::function<void(const WatchUpdate&)> on_update_;
  int64_t next_revision_;  // the watch thread's: the first revision not delivered yet
  Stopper stopper_;
  std::thread thread_;  // last: started when everything above is ready
};

// EtcdClient::keepLease: refreshes on its own thread. Each refresh is a short LeaseKeepAlive
// stream (one request, one answer) whose deadline is the lease's expiry at the latest, so a
// member that hangs cannot hold a refresh past the moment the lease is lost.
class KeptLease final : public EtcdClient::Lease {
 public:
  KeptLease(std::shared_ptr<Core> core, int64_t id, absl::Duration ttl, absl::Time expiry,
            std::function<void()> on_lost)
      : core_(std::move(core)),
        id_(id),
        interval_(ttl / 3),
        expiry_(expiry),
        on_lost_(std::move(on_lost)) {
    thread_ = std::thread([this] { run(); });
  }
  ~KeptLease() override {
    stopper_.stop();
    thread_.join();
    if (alive_.load()) {
      pb::LeaseRevokeRequest req;
      req.set_id(id_);
      pb::LeaseRevokeResponse resp;
      (void)core_->unary("lease_revoke", Core::Kind::Write,
                         [&](Endpoint& ep, grpc::ClientContext* ctx) {
                           resp.Clear();
                           return ep.lease->LeaseRevoke(ctx, req, &resp);
                         });
    }
  }

  int64_t id() const override { return id_; }
  bool alive() const override { return alive_.load(); }

 private:
  void run() {
    absl::Time next = expiry_ - 2 * interval_;  // granted at expiry - ttl
    while (true) {
      if (stopper_.sleepFor(next - absl::Now())) {
        return;
      }
      const absl::Time sent = absl::Now();
      if (sent >= expiry_) {
        break;  // no successful refresh in time: etcd has dropped it (or is about to)
      }
      const size_t index = core_->current();
      absl::StatusOr<int64_t> ttl = refresh(index);
      if (stopper_.stopping()) {
        return;
      }
      if (ttl.ok() && *ttl <= 0) {
        break;  // expired or revoked
      }
      if (ttl.ok()) {
        expiry_ = sent + absl::Seconds(*ttl);
        next = sent + interval_;
      } else {
        core_->rotateFrom(index);
        next = absl::Now() + std::min(interval_, kLeaseRetry);
      }
    }
    alive_.store(false);
    if (on_lost_) {
      on_lost_();
    }
  }

  /// One keepalive: the TTL etcd answered (<= 0: gone), or why there was no answer.
  absl::StatusOr<int64_t> refresh(size_t index) {
    Endpoint& ep = core_->endpoint(index);
    grpc::ClientContext ctx;
    const absl::Time deadline = std::min(absl::Now() + core_->options().request_timeout, expiry_);
    ctx.set_deadline(absl::ToChronoTime(deadline));
    ctx.AddMetadata("hasleader", "true");
    absl::StatusOr<std::string> token = core_->addToken(ctx, index, deadline);
    if (!token.ok()) {
      return token.status();
    }
    if (!stopper_.attach(&ctx)) {
      return absl::CancelledError("stopping");
    }
    auto stream = ep.lease->LeaseKeepAlive(&ctx);
    pb::LeaseKeepAliveRequest req;
    req.set_id(id_);
    pb::LeaseKeepAliveResponse resp;
    const bool answered = stream->Write(req) && stream->Read(&resp);
    if (answered) {
      stream->WritesDone();
    } else {
      ctx.TryCancel();
    }
    const grpc::Status status = stream->Finish();
    stopper_.detach();
    absl::Status result = answered ? absl::OkStatus() : core_->toStatus(status, "lease_keepalive", ep);
    if (!answered && result.ok()) {
      result = absl::UnavailableError(
          absl::StrCat("etcd lease_keepalive at ", ep.url, ": the stream ended without an answer"));
    }
    core_->observe("lease_keepalive", result.code());
    if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      core_->dropToken(*token);
    }
    if (!result.ok()) {
      return result;
    }
    return resp.ttl();
  }

  std::shared_ptr<Core> core_;
  const int64_t id_;
  const absl::Duration interval_;
  absl::Time expiry_;  // the lease thread's: when the lease ends without another refresh
  const std::function<void()> on_lost_;
  std::atomic<bool> alive_{true};
  Stopper stopper_;
  std::thread thread_;  // last: started when everything above is ready
};

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::create(EtcdOptions options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: no endpoints");
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError("etcd: cert_file and key_file go together");
  }
  if (options.request_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("etcd: request_timeout must be positive");
  }
  grpc::SslCredentialsOptions tls;  // empty root certificates: the system's
  if (!options.ca_file.empty()) {
    absl::StatusOr<std::string> ca = readFile("ca_file", options.ca_file);
    if (!ca.ok()) {
      return ca.status();
    }
    tls.pem_root_certs = *std::move(ca);
  }
  if (!options.cert_file.empty()) {
    absl::StatusOr<std::string> cert = readFile("cert_file", options.cert_file);
    if (!cert.ok()) {
      return cert.status();
    }
    absl::StatusOr<std::string> key = readFile("key_file", options.key_file);
    if (!key.ok()) {
      return key.status();
    }
    tls.pem_cert_chain = *std::move(cert);
    tls.pem_private_key = *std::move(key);
  }
  std::vector<Endpoint> endpoints;
  for (const std::string& url : options.endpoints) {
    absl::StatusOr<Endpoint> ep = makeEndpoint(url, tls);
    if (!ep.ok()) {
      return ep.status();
    }
    endpoints.push_back(*std::move(ep));
  }
  return std::unique_ptr<EtcdClient>(
      new EtcdClient(std::make_shared<Core>(std::move(options), std::move(endpoints))));
}

EtcdClient::EtcdClient(std::shared_ptr<Core> core) : core_(std::move(core)) {}

EtcdClient::~EtcdClient() = default;

absl::StatusOr<RangeResult> EtcdClient::get(const std::string& key, bool serializable) {
  pb::RangeRequest req;
  req.set_key(key);
  req.set_serializable(serializable);
  pb::RangeResponse resp;
  absl::Status status = core_->unary("range", Core::Kind::Read,
                                     [&](Endpoint& ep, grpc::ClientContext* ctx) {
                                       resp.Clear();
                                       return ep.kv->Range(ctx, req, &resp);
                                     });
  if (!status.ok()) {
    return status;
  }
  RangeResult out;
  out.revision = resp.header().revision();
  out.kvs = fromProto(resp.kvs());
  return out;
}

absl::StatusOr<RangeResult> EtcdClient::getPrefix(const std::string& prefix, int64_t revision,
                                                  bool serializable) {
  for (int listing = 1;; ++listing) {
    RangeResult out;
    out.revision = revision;
    pb::RangeRequest req;
    req.set_key(rangeStart(prefix));
    req.set_range_end(prefixEnd(prefix));
    req.set_limit(kPageSize);
    req.set_serializable(serializable);
    pb::RangeResponse resp;
    while (true) {
      req.set_revision(out.revision);  // after the first page: the first page's revision
      absl::Status status = core_->unary("range", Core::Kind::Read,
                                         [&](Endpoint& ep, grpc::ClientContext* ctx) {
                                           resp.Clear();
                                           return ep.kv->Range(ctx, req, &resp);
                                         });
      if (status.code() == absl::StatusCode::kOutOfRange && revision == 0 && out.revision != 0 &&
          listing < kRelistAttempts) {
        break;  // compacted past the first page's revision meanwhile: list again at "now"
      }
      if (!status.ok()) {
        return status;
      }
      if (out.revision == 0) {
        out.revision = resp.header().revision();
        out.kvs.reserve(static_cast<size_t>(resp.count()));
      }
      for (const pb::KeyValue& kv : resp.kvs()) {
        out.kvs.push_back(fromProto(kv));
      }
      if (!resp.more() || resp.kvs_size() == 0) {
        return out;
      }
      req.set_key(resp.kvs(resp.kvs_size() - 1).key() + std::string(1, '\0'));
    }
  }
}

absl::StatusOr<TxnResult> EtcdClient::txn(const std::vector<Compare>& compares,
                                          const std::vector<Op>& success,
                                          const std::vector<Op>& failure) {
  pb::TxnRequest req;
  for (const Compare& compare : compares) {
    toProto(compare, req.add_compare());
  }
  for (const Op& op : success) {
    toProto(op, req.add_success());
  }
  for (const Op& op : failure) {
    toProto(op, req.add_failure());
  }
  pb::TxnResponse resp;
  absl::Status status = core_->unary("txn", Core::Kind::Write,
                                     [&](Endpoint& ep, grpc::ClientContext* ctx) {
                                       resp.Clear();
                                       return ep.kv->Txn(ctx, req, &resp);
                                     });
  if (!status.ok()) {
    return status;
  }
  TxnResult out;
  out.succeeded = resp.succeeded();
  out.revision = resp.header().revision();
  const std::vector<Op>& branch = resp.succeeded() ? success : failure;
  for (size_t i = 0; i < branch.size() && i < static_cast<size_t>(resp.responses_size()); ++i) {
    if (branch[i].kind == Op::Kind::Get || branch[i].kind == Op::Kind::GetPrefix) {
      out.gets.push_back(fromProto(resp.responses(static_cast<int>(i)).response_range().kvs()));
    }
  }
  return out;
}

absl::StatusOr<int64_t> EtcdClient::put(const std::string& key, const std::string& value,
                                        int64_t lease) {
  pb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  pb::PutResponse resp;
  absl::Status status = core_->unary("put", Core::Kind::Write,
                                     [&](Endpoint& ep, grpc::ClientContext* ctx) {
                                       resp.Clear();
                                       return ep.kv->Put(ctx, req, &resp);
                                     });
  if (!status.ok()) {
    return status;
  }
  return resp.header().revision();
}

absl::StatusOr<int64_t> EtcdClient::deletePrefix(const std::string& prefix) {
  pb::DeleteRangeRequest req;
  req.set_key(rangeStart(prefix));
  req.set_range_end(prefixEnd(prefix));
  pb::DeleteRangeResponse resp;
  absl::Status status = core_->unary("delete", Core::Kind::Write,
                                     [&](Endpoint& ep, grpc::ClientContext* ctx) {
                                       resp.Clear();
                                       return ep.kv->DeleteRange(ctx, req, &resp);
                                     });
  if (!status.ok()) {
    return status;
  }
  return resp.header().revision();
}

absl::Status EtcdClient::compact(int64_t revision) {
  pb::CompactionRequest req;
  req.set_revision(revision);
  pb::CompactionResponse resp;
  return core_->unary("compact", Core::Kind::Write,
                      [&](Endpoint& ep, grpc::ClientContext* ctx) {
                        resp.Clear();
                        return ep.kv->Compact(ctx, req, &resp);
                      });
}

namespace {

struct Granted {
  int64_t id = 0;
  int64_t ttl = 0;  // etcd may raise a short TTL to its minimum
};

absl::StatusOr<Granted> grant(Core& core, int64_t ttl_seconds) {
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl_seconds);
  pb::LeaseGrantResponse resp;
  absl::Status status = core.unary("lease_grant", Core::Kind::Write,
                                   [&](Endpoint& ep, grpc::ClientContext* ctx) {
                                     resp.Clear();
                                     return ep.lease->LeaseGrant(ctx, req, &resp);
                                   });
  if (!status.ok()) {
    return status;
  }
  if (!resp.error().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("etcd lease_grant: ", resp.error()));
  }
  return Granted{resp.id(), resp.ttl()};
}

}  // namespace

absl::StatusOr<int64_t> EtcdClient::grantLease(int64_t ttl_seconds) {
  absl::StatusOr<Granted> granted = grant(*core_, ttl_seconds);
  if (!granted.ok()) {
    return granted.status();
  }
  return granted->id;
}

absl::Status EtcdClient::revokeLease(int64_t id) {
  pb::LeaseRevokeRequest req;
  req.set_id(id);
  pb::LeaseRevokeResponse resp;
  return core_->unary("lease_revoke", Core::Kind::Write,
                      [&](Endpoint& ep, grpc::ClientContext* ctx) {
                        resp.Clear();
                        return ep.lease->LeaseRevoke(ctx, req, &resp);
                      });
}

absl::StatusOr<std::unique_ptr<EtcdClient::Lease>> EtcdClient::keepLease(
    int64_t ttl_seconds, std::function<void()> on_lost) {
  if (ttl_seconds <= 0) {
    return absl::InvalidArgumentError("etcd: a lease's TTL must be positive");
  }
  const absl::Time sent = absl::Now();  // etcd counts the TTL from later: a safe estimate
  absl::StatusOr<Granted> granted = grant(*core_, ttl_seconds);
  if (!granted.ok()) {
    return granted.status();
  }
  const absl::Duration ttl = absl::Seconds(granted->ttl);
  return std::unique_ptr<Lease>(
      new KeptLease(core_, granted->id, ttl, sent + ttl, std::move(on_lost)));
}

std::unique_ptr<EtcdClient::Watch> EtcdClient::watchPrefix(
    const std::string& prefix, int64_t start_revision,
    std::function<void(const WatchUpdate&)> on_update) {
  return std::make_unique<PrefixWatch>(core_, prefix, start_revision, std::move(on_update));
}

absl::StatusOr<EtcdClient::MemberStatus> EtcdClient::status(const std::string& endpoint) {
  const std::optional<size_t> index = core_->find(endpoint);
  if (!index) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd status: '", endpoint, "' is not one of the client's endpoints"));
  }
  pb::StatusRequest req;
  pb::StatusResponse resp;
  absl::Status status = core_->unary(
      "status", Core::Kind::Read,
      [&](Endpoint& ep, grpc::ClientContext* ctx) {
        resp.Clear();
        return ep.maintenance->Status(ctx, req, &resp);
      },
      index);
  if (!status.ok()) {
    return status;
  }
  MemberStatus out;
  out.member_id = resp.header().member_id();
  out.leader = resp.leader();
  out.revision = resp.header().revision();
  return out;
}

}  // namespace shadowrelay::api::etcd
