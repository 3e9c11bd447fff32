// SPDX-License-Identifier: Apache-2.0
#include "crypto/packet_window.h"

#include <algorithm>

namespace shadowrelay::crypto {

bool PacketIdWindow::check(uint64_t id) const {
  if (!any_ || id > highest_) return true;
  if (highest_ - id >= kWindow) return false;  // older than the window reaches
  return (blocks_[blockOf(id)] & bitOf(id)) == 0;
}

bool PacketIdWindow::accept(uint64_t id) {
  if (!check(id)) return false;
  if (!any_ || id > highest_) {
    // Clear the blocks between the newest one and the block of `id` (all of them after a jump
    // of kBlocks blocks or more): they held IDs that have now left the window.
    const uint64_t from = any_ ? highest_ / kBlockBits : id / kBlockBits;
    const uint64_t to = id / kBlockBits;
    const uint64_t passed = std::min<uint64_t>(to - from, kBlocks);
    for (uint64_t i = 1; i <= passed; ++i) blocks_[(from + i) % kBlocks] = 0;
    highest_ = id;
    any_ = true;
  }
  blocks_[blockOf(id)] |= bitOf(id);
  return true;
}

}  // namespace shadowrelay::crypto
