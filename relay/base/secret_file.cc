// SPDX-License-Identifier: Apache-2.0
#include "relay/base/secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "relay/base/durable_file.h"

namespace shadowrelay::relay {
namespace {

std::string octal(mode_t mode) { return absl::StrFormat("%04o", mode & 07777); }

/// Closes a descriptor when it goes out of scope.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

std::string parentOf(const std::string& dir) {
  std::filesystem::path parent = std::filesystem::path(dir).lexically_normal().parent_path();
  if (parent.empty()) parent = ".";
  return parent.string();
}

/// mkdir -p for `dir`'s parents, then `dir` itself 0700; the parent is fsynced after.
absl::Status createPrivate(const std::string& dir, absl::string_view what) {
  const std::string parent = parentOf(dir);
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat(what, " ", dir, ": cannot create ", parent, ": ", ec.message()));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(
        absl::StrCat(what, " ", dir, ": cannot create: ", std::strerror(errno)));
  }
  if (absl::Status s = fsyncDirectory(parent); !s.ok()) {
    return absl::InternalError(absl::StrCat(what, " ", dir, ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> readSecretFile(const std::string& path, absl::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": cannot be read: ", std::strerror(errno)));
  }
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": cannot stat: ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path, ": not a regular file"));
  }
  if (st.st_uid == ::geteuid() && (st.st_mode & 077) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": permissions ", octal(st.st_mode),
                     " are too open (group or others may read it): chmod 600 ", path));
  }
  if (static_cast<size_t>(st.st_size) > kMaxSecretFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": larger than ", kMaxSecretFileBytes, " bytes"));
  }
  std::string contents;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " ", path, ": cannot be read: ", std::strerror(errno)));
    }
    if (n == 0) break;
    contents.append(buf, static_cast<size_t>(n));
    if (contents.size() > kMaxSecretFileBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " ", path, ": larger than ", kMaxSecretFileBytes, " bytes"));
    }
  }
  return contents;
}

absl::StatusOr<std::string> makePrivateDirectory(const std::string& dir, absl::string_view what) {
  if (dir.empty()) return absl::InternalError(absl::StrCat(what, ": empty"));
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    if (absl::Status s = createPrivate(dir, what); !s.ok()) return s;
    fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat(what, " ", dir, ": cannot open: ", std::strerror(errno)));
  }
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return absl::InternalError(
        absl::StrCat(what, " ", dir, ": cannot stat: ", std::strerror(errno)));
  }
  const mode_t mode = st.st_mode & 07777;
  if (st.st_uid != ::geteuid()) {
    if ((mode & 077) == 0) return std::string();
    return absl::StrCat(what, " ", dir, " (mode ", octal(mode), ") belongs to uid ", st.st_uid,
                        ", not to this user: other users may list it; its secrets are 0600");
  }
  if (mode == 0700) return std::string();
  if (::fchmod(fd, 0700) != 0) {
    return absl::InternalError(
        absl::StrCat(what, " ", dir, ": cannot chmod 700: ", std::strerror(errno)));
  }
  return absl::StrCat(what, " ", dir, ": mode ", octal(mode), " changed to 0700");
}

}  // namespace shadowrelay::relay
