// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "relay/event/event_types.h"

namespace shadowrelay::relay {

class Timer;

/// Binary min-heap of armed timers ordered by (deadline, arm sequence), so timers with equal
/// deadlines fire in the order they were armed. Each Timer stores its heap index: arm, re-arm
/// and cancel are O(log n), the next deadline is O(1). Entries keep the deadline inline, so
/// sifting never dereferences a Timer except to update its index. Loop-thread only.
class TimerHeap {
 public:
  static constexpr size_t kNotInHeap = std::numeric_limits<size_t>::max();

  TimerHeap() = default;
  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;

  /// Inserts `timer` (not in the heap) or moves it (in the heap) to `deadline`.
  void schedule(Timer& timer, TimePoint deadline);
  /// Removes `timer` if it is in the heap.
  void remove(Timer& timer);

  /// Pops and returns the earliest timer if its deadline is <= now and it was armed before
  /// sequence `seq_limit` (see nextSequence()); nullptr otherwise.
  Timer* popExpired(TimePoint now, uint64_t seq_limit);

  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  TimePoint earliestDeadline() const { return heap_.front().deadline; }
  /// The sequence number the next schedule() will use.
  uint64_t nextSequence() const { return next_seq_; }
  /// Entries moved by sifting since construction: a probe for the O(log n) bound. Each
  /// schedule/remove/pop moves at most floor(log2(size)) + 1 entries.
  uint64_t moves() const { return moves_; }

 private:
  struct Entry {
    TimePoint deadline;
    uint64_t seq;
    Timer* timer;
  };
  static bool before(const Entry& a, const Entry& b) {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.seq < b.seq);
  }
  void place(size_t index, const Entry& entry);
  // Both take the entry that belongs in the hole at `index` and return its final index.
  size_t siftUp(size_t index, const Entry& entry);
  size_t siftDown(size_t index, const Entry& entry);
  void removeAt(size_t index);

  std::vector<Entry> heap_;
  uint64_t next_seq_ = 0;
  uint64_t moves_ = 0;
};

}  // namespace shadowrelay::relay
