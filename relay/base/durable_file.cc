// SPDX-License-Identifier: Apache-2.0
#include "relay/base/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shadowrelay::relay {
namespace {

absl::Status posixError(absl::string_view what, absl::string_view path, int err) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

/// The directory holding `path` ("." for a bare file name).
std::string directoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status writeAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return posixError("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

/// Creates `path` afresh (a stale file of that name is removed first; a directory is not) with
/// exactly `mode`, writes `contents` and fsyncs it. Leaves no file behind on error.
absl::Status writeNewFile(const std::string& path, absl::string_view contents, mode_t mode) {
  ::unlink(path.c_str());  // a leftover of a crashed writer; O_EXCL below catches anything else
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return posixError("cannot create", path, errno);
  absl::Status s;
  if (::fchmod(fd, mode) != 0) s = posixError("cannot chmod", path, errno);
  if (s.ok()) s = writeAll(fd, contents, path);
  if (s.ok() && ::fsync(fd) != 0) s = posixError("cannot fsync", path, errno);
  if (::close(fd) != 0 && s.ok()) s = posixError("cannot close", path, errno);
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

}  // namespace

absl::Status fsyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return posixError("cannot open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return posixError("cannot fsync directory", dir, err);
  return absl::OkStatus();
}

absl::StatusOr<StagedFile> StagedFile::write(const std::string& path, absl::string_view contents,
                                             mode_t mode) {
  std::string temp_path = absl::StrCat(path, ".tmp");
  if (absl::Status s = writeNewFile(temp_path, contents, mode); !s.ok()) return s;
  return StagedFile(path, std::move(temp_path));
}

StagedFile::StagedFile(StagedFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::exchange(other.temp_path_, std::string())),
      committed_(other.committed_) {}

StagedFile& StagedFile::operator=(StagedFile&& other) noexcept {
  if (this != &other) {
    discard();
    path_ = std::move(other.path_);
    temp_path_ = std::exchange(other.temp_path_, std::string());
    committed_ = other.committed_;
  }
  return *this;
}

StagedFile::~StagedFile() { discard(); }

void StagedFile::discard() {
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
}

absl::Status StagedFile::commit() {
  if (committed_) return absl::OkStatus();
  if (temp_path_.empty()) {
    return absl::InternalError(absl::StrCat("cannot replace ", path_, ": nothing staged"));
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return posixError(absl::StrCat("cannot rename ", temp_path_, " to"), path_, errno);
  }
  temp_path_.clear();
  committed_ = true;
  return fsyncDirectory(directoryOf(path_));
}

absl::Status writeFileDurably(const std::string& path, absl::string_view contents, mode_t mode) {
  absl::StatusOr<StagedFile> staged = StagedFile::write(path, contents, mode);
  if (!staged.ok()) return staged.status();
  return staged->commit();
}

}  // namespace shadowrelay::relay
