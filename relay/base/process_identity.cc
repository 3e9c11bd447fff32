// SPDX-License-Identifier: Apache-2.0
#include "relay/base/process_identity.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "relay/base/durable_file.h"

namespace shadowrelay::relay {
namespace {

absl::Status errnoError(absl::string_view what, const std::string& subject, int err) {
  return absl::InternalError(absl::StrCat(what, " ", subject, ": ", std::strerror(err)));
}

/// The pid a pid file names, or nullopt when it cannot be read or parsed.
std::optional<pid_t> pidIn(const std::string& path) {
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  pid_t pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid)) return std::nullopt;
  return pid;
}

/// chown of `dir` and of the regular files directly in it (no links followed).
absl::Status give(const std::string& dir, uid_t uid, gid_t gid) {
  if (::chown(dir.c_str(), uid, gid) != 0) return errnoError("chown", dir, errno);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return errnoError("opendir", dir, errno);
  absl::Status status;
  while (const dirent* entry = ::readdir(d)) {
    struct stat st {};
    if (::fstatat(::dirfd(d), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode)) {
      continue;
    }
    if (::fchownat(::dirfd(d), entry->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
      status = errnoError("chown", absl::StrCat(dir, "/", entry->d_name), errno);
      break;
    }
  }
  ::closedir(d);
  return status;
}

}  // namespace

absl::StatusOr<PidFile> PidFile::create(const std::string& path) {
  if (absl::Status s = writeFileDurably(path, absl::StrCat(::getpid(), "\n"), 0644); !s.ok()) {
    return s;
  }
  return PidFile(path);
}

PidFile::PidFile(PidFile&& other) noexcept : path_(std::exchange(other.path_, "")) {}

PidFile::~PidFile() {
  if (path_.empty()) return;
  if (pidIn(path_) == ::getpid()) ::unlink(path_.c_str());
}

absl::StatusOr<RunAs> lookUpUser(const std::string& name) {
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::string buf(size > 0 ? static_cast<size_t>(size) : 16384, '\0');
  passwd entry{};
  passwd* found = nullptr;
  const int rc = ::getpwnam_r(name.c_str(), &entry, buf.data(), buf.size(), &found);
  if (rc != 0) return errnoError("getpwnam", name, rc);
  if (found == nullptr) return absl::NotFoundError(absl::StrCat("no user named ", name));
  return RunAs{name, found->pw_uid, found->pw_gid};
}

absl::Status becomeUser(const RunAs& who, const std::vector<std::string>& dirs) {
  if (::geteuid() == who.uid && ::getuid() == who.uid) return absl::OkStatus();
  for (const std::string& dir : dirs) {
    if (absl::Status s = give(dir, who.uid, who.gid); !s.ok()) return s;
  }
  if (::initgroups(who.name.c_str(), who.gid) != 0) {
    return errnoError("initgroups", who.name, errno);
  }
  if (::setgid(who.gid) != 0) return errnoError("setgid", who.name, errno);
  if (::setuid(who.uid) != 0) return errnoError("setuid", who.name, errno);
  if (who.uid != 0 && (::setuid(0) == 0 || ::seteuid(0) == 0)) {
    return absl::InternalError(absl::StrCat("user ", who.name, ": root could be regained"));
  }
  return absl::OkStatus();
}

}  // namespace shadowrelay::relay
