// SPDX-License-Identifier: Apache-2.0
#pragma once
// Replacing a file so that a crash (kill -9, power loss) leaves either the old contents or all of
// the new ones at its path, never a torn file: write a temporary file next to it, fsync it, rename
// it over the path, fsync the directory. Errors name the file and the failing step.

#include <sys/types.h>

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::relay {

/// Replaces (or creates) `path` with `contents`, with permissions exactly `mode` (the umask does
/// not apply), durably: see StagedFile. On error the temporary file is gone and `path` holds its
/// old contents, unless the error is the final directory fsync (the new contents are in place
/// but a crash could still lose them). Errors are INTERNAL.
absl::Status writeFileDurably(const std::string& path, absl::string_view contents,
                              mode_t mode = 0600);

/// fsync()s the directory `dir`, so that the entries made or renamed in it survive a crash.
/// Errors are INTERNAL and name the directory.
absl::Status fsyncDirectory(const std::string& dir);

/// writeFileDurably() in two steps, for callers that act between them (e.g. keep the current file
/// as a previous generation before it is replaced). write() stages the contents in `<path>.tmp`
/// (a stale one from a crash is replaced), fsynced; commit() renames it over `path` and fsyncs the
/// directory. A StagedFile destroyed before its commit renamed it removes the temporary file.
/// Writers of the same path must exclude each other (they share the temporary name).
class StagedFile {
 public:
  static absl::StatusOr<StagedFile> write(const std::string& path, absl::string_view contents,
                                          mode_t mode);

  StagedFile(StagedFile&& other) noexcept;
  StagedFile& operator=(StagedFile&& other) noexcept;
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  ~StagedFile();

  /// Renames the temporary file over the path, then fsyncs the directory; does nothing once
  /// committed. After an error, committed() says whether the rename happened (then only the
  /// directory fsync failed).
  absl::Status commit();
  bool committed() const { return committed_; }

  const std::string& path() const { return path_; }
  const std::string& tempPath() const { return temp_path_; }

 private:
  StagedFile(std::string path, std::string temp_path)
      : path_(std::move(path)), temp_path_(std::move(temp_path)) {}
  void discard();

  std::string path_;
  std::string temp_path_;  // "" once renamed or removed
  bool committed_ = false;
};

}  // namespace shadowrelay::relay
