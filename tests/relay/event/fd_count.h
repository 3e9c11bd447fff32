// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <dirent.h>

#include <cstddef>

namespace shadowrelay::relay::testing {

/// Number of open fds of this process (entries of /proc/self/fd, minus the one opendir uses).
inline size_t countOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) {
    return 0;
  }
  size_t n = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') {
      ++n;
    }
  }
  ::closedir(dir);
  return n - 1;
}

}  // namespace shadowrelay::relay::testing
