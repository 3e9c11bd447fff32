// SPDX-License-Identifier: Apache-2.0
#pragma once
// The server's AEAD-2017 salt replay filters (PROTOCOL.md §5) and their files in --state-dir.
// TCP and UDP have a filter each, so that a flood of UDP packets (each with a fresh salt) cannot
// push the TCP salts out of theirs. With a state directory both are saved periodically and at a
// graceful stop (relay::writeFileDurably: a crash leaves the previous file) and loaded at start,
// so a restart does not reopen the window: a client stream or packet captured before the restart
// is still refused after it. What a kill -9 loses is what arrived since the last save.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "crypto/salt_filter.h"

namespace shadowrelay::api::app {

class ReplayFilters {
 public:
  /// File names under the state directory.
  static constexpr const char* kTcpFile = "replay_filter_tcp";
  static constexpr const char* kUdpFile = "replay_filter_udp";

  /// Empty filters when `state_dir` is empty; else those saved there. A missing file starts
  /// empty; a damaged or differently sized one too, with a warning naming it (never fatal: a
  /// server must come up).
  static std::unique_ptr<ReplayFilters> open(const std::string& state_dir);

  crypto::SaltFilter& tcp() { return *tcp_; }
  crypto::SaltFilter& udp() { return *udp_; }
  bool persistent() const { return !state_dir_.empty(); }

  /// Writes both filters to the state directory (0600, durably); OK without one. Errors name
  /// the file.
  absl::Status save() const;

 private:
  std::string state_dir_;
  std::unique_ptr<crypto::SaltFilter> tcp_;
  std::unique_ptr<crypto::SaltFilter> udp_;
};

}  // namespace shadowrelay::api::app
