// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace shadowrelay::crypto {

/// The replay filter of one Shadowsocks 2022 UDP session (PROTOCOL.md §2.5): a sliding window
/// over its packet IDs, WireGuard style. It remembers the highest ID accepted and, for the
/// kWindow IDs below it, which were seen; an ID that is older than that, or seen, is refused.
///
/// A ring of kBlocks 64-bit blocks: one block is always the one being filled, so the window is
/// (kBlocks - 1) * 64 = 1984 IDs (packets may arrive that far out of order). Moving forward
/// clears only the blocks it passes (at most kBlocks), so any jump costs the same.
///
/// The caller opens and validates a packet first (tag, type, timestamp, address) and only then
/// calls accept(): a forged or stale packet must never move the window. check() answers the same
/// question without changing anything (a pre-check before opening). 256 bytes; one per session.
/// Not thread-safe (a session lives on one loop).
class PacketIdWindow {
 public:
  static constexpr size_t kBlocks = 32;
  static constexpr uint64_t kBlockBits = 64;
  static constexpr uint64_t kWindow = (kBlocks - 1) * kBlockBits;

  /// Would accept(id) take it?
  bool check(uint64_t id) const;
  /// Takes `id` if check(id) and records it. False: too old or already seen (a replay).
  bool accept(uint64_t id);

  /// The highest ID accepted so far (0 before any).
  uint64_t highest() const { return highest_; }

 private:
  static size_t blockOf(uint64_t id) { return (id / kBlockBits) % kBlocks; }
  static uint64_t bitOf(uint64_t id) { return uint64_t{1} << (id % kBlockBits); }

  std::array<uint64_t, kBlocks> blocks_{};
  uint64_t highest_ = 0;
  bool any_ = false;
};

}  // namespace shadowrelay::crypto
