// SPDX-License-Identifier: Apache-2.0
#include "api/app/replay_filters.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "relay/base/durable_file.h"
#include "relay/log.h"

namespace shadowrelay::api::app {
namespace {

std::unique_ptr<crypto::SaltFilter> load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::make_unique<crypto::SaltFilter>();  // first start
  std::stringstream bytes;
  bytes << in.rdbuf();
  auto filter = crypto::SaltFilter::restore(bytes.str());
  if (!filter.ok()) {
    SR_LOG(Warn, "%s: %s; starting with an empty replay filter", path, filter.status().message());
    return std::make_unique<crypto::SaltFilter>();
  }
  SR_LOG(Info, "replay filter: %s restored (%d salts seen in all; each kept for at least %d more)",
         path, static_cast<long long>((*filter)->insertCount()),
         static_cast<long long>((*filter)->guaranteedWindow()));
  return *std::move(filter);
}

}  // namespace

std::unique_ptr<ReplayFilters> ReplayFilters::open(const std::string& state_dir) {
  auto filters = std::make_unique<ReplayFilters>();
  filters->state_dir_ = state_dir;
  if (state_dir.empty()) {
    filters->tcp_ = std::make_unique<crypto::SaltFilter>();
    filters->udp_ = std::make_unique<crypto::SaltFilter>();
  } else {
    filters->tcp_ = load(absl::StrCat(state_dir, "/", kTcpFile));
    filters->udp_ = load(absl::StrCat(state_dir, "/", kUdpFile));
  }
  return filters;
}

absl::Status ReplayFilters::save() const {
  if (state_dir_.empty()) return absl::OkStatus();
  if (absl::Status s = relay::writeFileDurably(absl::StrCat(state_dir_, "/", kTcpFile),
                                               tcp_->snapshot());
      !s.ok()) {
    return s;
  }
  return relay::writeFileDurably(absl::StrCat(state_dir_, "/", kUdpFile), udp_->snapshot());
}

}  // namespace shadowrelay::api::app
