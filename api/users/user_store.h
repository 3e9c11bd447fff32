// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "api/users/user.h"

namespace shadowrelay::api::users {

/// What --state-dir keeps: the API-managed users (with their traffic) and the default method.
struct StoreContents {
  uint64_t generation = 0;                    // numbered by UserStore::save(), 1 for the first save
  std::optional<std::string> default_method;  // set through CipherService.SetDefaults
  std::vector<User> users;                    // source Api only
  bool operator==(const StoreContents&) const = default;
};

/// The file format: JSON {"format", "version", "body", "sha256"}, where sha256 is the hex
/// SHA-256 of the body's canonical (compact, key-sorted) JSON text. The text holds secrets.
absl::StatusOr<std::string> encodeStore(const StoreContents& contents);
/// Parses and validates a file's text: syntax, checksum, then every field (names, methods,
/// secrets). Any failure means the file is not a good generation.
absl::StatusOr<StoreContents> decodeStore(absl::string_view text);

/// The user store in a state directory: `users.json`, the previous good generation in
/// `users.json.prev`, and a lock file so that two processes never share a directory.
///
/// save() is atomic and durable (relay::StagedFile): the new text goes to `users.json.tmp`
/// (fsync), the current good `users.json` is hard-linked to `users.json.prev`, the temporary file
/// is renamed over `users.json`, and the directory is fsync'ed. A crash at any point (kill -9 included) leaves a
/// complete `users.json`; a file damaged by other means falls back to `users.json.prev`.
/// Not thread-safe: UserRegistry serialises the calls.
class UserStore {
 public:
  static constexpr absl::string_view kFileName = "users.json";
  static constexpr absl::string_view kPreviousFileName = "users.json.prev";
  static constexpr absl::string_view kTempFileName = "users.json.tmp";
  static constexpr absl::string_view kCorruptFileName = "users.json.corrupt";
  static constexpr absl::string_view kLockFileName = "users.lock";

  /// Creates `dir` (mode 0700) if needed and locks it. FAILED_PRECONDITION if another process
  /// holds the lock.
  static absl::StatusOr<std::unique_ptr<UserStore>> open(const std::string& dir);
  ~UserStore();
  UserStore(const UserStore&) = delete;
  UserStore& operator=(const UserStore&) = delete;

  struct Loaded {
    StoreContents contents;
    /// Non-empty when users.json was missing or bad and users.json.prev was used: says which
    /// file and why (never any secret). The caller logs it.
    std::string warning;
  };

  /// The newest good generation. Neither file present: empty contents (a first start). Neither
  /// good: FAILED_PRECONDITION naming the file(s) and the reason; never "no users".
  absl::StatusOr<Loaded> load();

  /// Writes `contents` as the next generation (contents.generation is ignored and set to the
  /// loaded generation + 1). load() must have succeeded first.
  absl::Status save(const StoreContents& contents);

  const std::string& dir() const { return dir_; }
  std::string path() const;          // <dir>/users.json
  std::string previousPath() const;  // <dir>/users.json.prev
  /// The generation on disk (after load() or the last save()).
  uint64_t generation() const { return generation_; }

 private:
  UserStore(std::string dir, int lock_fd) : dir_(std::move(dir)), lock_fd_(lock_fd) {}
  std::string file(absl::string_view name) const;

  std::string dir_;
  int lock_fd_;
  bool loaded_ = false;
  bool main_is_good_ = false;  // users.json exists and holds generation_
  uint64_t generation_ = 0;
};

}  // namespace shadowrelay::api::users
