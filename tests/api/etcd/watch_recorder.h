// SPDX-License-Identifier: Apache-2.0
#pragma once
// What an EtcdClient watch delivered, recorded from the watch's thread and read (with bounded
// waits) from the test's.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/etcd/etcd_client.h"

namespace shadowrelay::api::etcd::testing {

/// One event as a comparable line: "<revision> PUT|DEL <key>=<value>".
inline std::string describe(const WatchEvent& event) {
  return absl::StrCat(event.kv.mod_revision, event.type == WatchEvent::Type::Put ? " PUT " : " DEL ",
                      event.kv.key, "=", event.kv.value);
}

class WatchRecorder {
 public:
  /// The callback to give watchPrefix (the recorder must outlive the watch).
  std::function<void(const WatchUpdate&)> callback() {
    return [this](const WatchUpdate& update) {
      absl::MutexLock lock(&mu_);
      updates_.push_back(update);
      for (const WatchEvent& event : update.events) {
        events_.push_back(describe(event));
        last_revision_ = event.kv.mod_revision;
      }
      if (update.progress) {
        ++progress_;
      }
    };
  }

  /// Waits until the events reach `revision`; false after `timeout`.
  bool waitForRevision(int64_t revision, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return last_revision_ >= revision; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }
  /// Waits until at least `count` updates arrived; false after `timeout`.
  bool waitForUpdates(size_t count, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return updates_.size() >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }
  bool waitForProgress(int count, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return progress_ >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }

  std::vector<WatchUpdate> updates() {
    absl::MutexLock lock(&mu_);
    return updates_;
  }
  std::vector<std::string> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<WatchUpdate> updates_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
  int64_t last_revision_ ABSL_GUARDED_BY(mu_) = 0;
  int progress_ ABSL_GUARDED_BY(mu_) = 0;
};

/// Calls per method and status code, from the client's observer (any thread).
class CallCounter {
 public:
  std::function<void(absl::string_view, absl::StatusCode)> observer() {
    return [this](absl::string_view method, absl::StatusCode code) {
      absl::MutexLock lock(&mu_);
      calls_.push_back({std::string(method), code});
    };
  }
  int count(absl::string_view method, absl::StatusCode code) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& [m, c] : calls_) {
      n += m == method && c == code ? 1 : 0;
    }
    return n;
  }
  int count(absl::string_view method) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const auto& call : calls_) {
      n += call.first == method ? 1 : 0;
    }
    return n;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<std::string, absl::StatusCode>> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shadowrelay::api::etcd::testing
