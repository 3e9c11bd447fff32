// SPDX-License-Identifier: Apache-2.0
#pragma once
// Files that hold secrets: reading one only when other users cannot (as ssh treats a private
// key), and the directory that keeps them private.

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shadowrelay::relay {

/// Files larger than this are not secrets of ours (tokens, passwords, PEM keys).
inline constexpr size_t kMaxSecretFileBytes = 1 << 20;

/// Reads a file that holds a secret (a bearer token, a password, a private key). As ssh does
/// with a private key, a file that this process's user owns is refused when its group or others
/// have any access (mode & 077): INVALID_ARGUMENT "<what> <path>: permissions 0644 are too open
/// (group or others may read it): chmod 600 <path>". A file of another owner (a root-owned
/// secret that Kubernetes, Docker or systemd hands to the service) is its owner's to protect.
/// Also refused: anything but a regular file, more than kMaxSecretFileBytes. A file that cannot
/// be opened is INVALID_ARGUMENT too (a configuration to fix). Errors name `what` and the file,
/// never its contents. Symbolic links are followed (Kubernetes mounts secrets through them).
absl::StatusOr<std::string> readSecretFile(const std::string& path, absl::string_view what);

/// Makes `dir` a directory only its owner can enter: created 0700 when missing (missing parents
/// as mkdir -p does; the parent fsynced, so that the new entry survives a crash), or set to 0700
/// when it exists and this user owns it. A directory of another owner is left as it is. Returns
/// a note for the log ("" when there is none): the mode it had, or that other users may enter a
/// directory it cannot change. Errors (INTERNAL) name `what` and the directory.
absl::StatusOr<std::string> makePrivateDirectory(const std::string& dir, absl::string_view what);

}  // namespace shadowrelay::relay
