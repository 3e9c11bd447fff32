// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a daemon does once it holds its sockets and secrets: say where it runs (a pid file, as
// shadowsocks-libev's -f) and stop being root (-a, as libev's and Python's --user).

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shadowrelay::relay {

/// A pid file: the process id and a newline, written atomically (temporary file, rename) when
/// created and removed when destroyed, but only if it still names this process (a successor
/// that took the path over keeps its file).
class PidFile {
 public:
  static absl::StatusOr<PidFile> create(const std::string& path);
  PidFile(PidFile&& other) noexcept;
  PidFile& operator=(PidFile&&) = delete;
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;
  ~PidFile();

  const std::string& path() const { return path_; }

 private:
  explicit PidFile(std::string path) : path_(std::move(path)) {}
  std::string path_;  // "" once moved from
};

/// The account -a names.
struct RunAs {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

/// Looks `name` up (getpwnam_r). NOT_FOUND when there is no such user.
absl::StatusOr<RunAs> lookUpUser(const std::string& name);

/// Becomes `who` for good: `dirs` (the state directory, which stays writable) and the regular
/// files directly in them are given to it first, then the supplementary groups, the group and
/// the user change (glibc applies set*id to every thread of the process). Then checks that root
/// cannot be regained. Needs root (or CAP_SETUID/CAP_SETGID); as `who` already, it does nothing.
absl::Status becomeUser(const RunAs& who, const std::vector<std::string>& dirs);

}  // namespace shadowrelay::relay
