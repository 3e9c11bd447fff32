// SPDX-License-Identifier: Apache-2.0
#include "relay/event/timer_heap.h"

#include <cassert>

#include "relay/event/timer.h"

namespace shadowrelay::relay {

void TimerHeap::place(size_t index, const Entry& entry) {
  heap_[index] = entry;
  entry.timer->heap_index_ = index;
}

size_t TimerHeap::siftUp(size_t index, const Entry& entry) {
  while (index > 0) {
    const size_t parent = (index - 1) / 2;
    if (!before(entry, heap_[parent])) {
      break;
    }
    place(index, heap_[parent]);
    ++moves_;
    index = parent;
  }
  place(index, entry);
  return index;
}

size_t TimerHeap::siftDown(size_t index, const Entry& entry) {
  const size_t n = heap_.size();
  for (;;) {
    size_t child = 2 * index + 1;
    if (child >= n) {
      break;
    }
    if (child + 1 < n && before(heap_[child + 1], heap_[child])) {
      ++child;
    }
    if (!before(heap_[child], entry)) {
      break;
    }
    place(index, heap_[child]);
    ++moves_;
    index = child;
  }
  place(index, entry);
  return index;
}

void TimerHeap::schedule(Timer& timer, TimePoint deadline) {
  const Entry entry{deadline, next_seq_++, &timer};
  timer.deadline_ = deadline;
  if (timer.heap_index_ == kNotInHeap) {
    heap_.push_back(entry);
    siftUp(heap_.size() - 1, entry);
    return;
  }
  const size_t index = timer.heap_index_;
  assert(index < heap_.size() && heap_[index].timer == &timer);
  // The new sequence number is the largest, so a later-or-equal deadline can only move down.
  if (index > 0 && before(entry, heap_[(index - 1) / 2])) {
    siftUp(index, entry);
  } else {
    siftDown(index, entry);
  }
}

void TimerHeap::removeAt(size_t index) {
  heap_[index].timer->heap_index_ = kNotInHeap;
  const Entry last = heap_.back();
  heap_.pop_back();
  if (index == heap_.size()) {
    return;
  }
  if (index > 0 && before(last, heap_[(index - 1) / 2])) {
    siftUp(index, last);
  } else {
    siftDown(index, last);
  }
}

void TimerHeap::remove(Timer& timer) {
  if (timer.heap_index_ == kNotInHeap) {
    return;
  }
  assert(timer.heap_index_ < heap_.size() && heap_[timer.heap_index_].timer == &timer);
  removeAt(timer.heap_index_);
}

Timer* TimerHeap::popExpired(TimePoint now, uint64_t seq_limit) {
  if (heap_.empty()) {
    return nullptr;
  }
  const Entry& top = heap_.front();
  if (top.deadline > now || top.seq >= seq_limit) {
    return nullptr;
  }
  Timer* timer = top.timer;
  removeAt(0);
  return timer;
}

}  // namespace shadowrelay::relay
