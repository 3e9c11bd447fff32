// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace shadowrelay::relay {

/// Bytes a session must keep between events: output the peer has not taken yet, or a partial
/// AEAD unit. Sessions move data through the host's scratch buffers and only park leftovers
/// here, so an idle or smoothly flowing connection holds no buffer memory at all: an empty
/// ByteBuffer owns nothing.
class ByteBuffer {
 public:
  bool empty() const { return begin_ == end_; }
  size_t size() const { return end_ - begin_; }
  const uint8_t* data() const { return data_.get() + begin_; }
  std::span<const uint8_t> span() const { return {data(), size()}; }
  size_t capacity() const { return capacity_; }

  void assign(const uint8_t* bytes, size_t n) {
    begin_ = end_ = 0;
    append(bytes, n);
  }

  void append(const uint8_t* bytes, size_t n) {
    if (n == 0) return;
    if (capacity_ - end_ < n) grow(n);
    std::memcpy(data_.get() + end_, bytes, n);
    end_ += n;
  }

  /// Drops `n` bytes from the front; frees the memory when nothing is left.
  void consume(size_t n) {
    begin_ += n;
    if (begin_ >= end_) release();
  }

  /// Empties the buffer and keeps its memory (a partial unit comes again on the next read).
  void clear() { begin_ = end_ = 0; }

  void release() {
    data_.reset();
    capacity_ = begin_ = end_ = 0;
  }

 private:
  void grow(size_t n) {
    const size_t used = size();
    size_t capacity = capacity_ == 0 ? 256 : capacity_;
    while (capacity < used + n) capacity *= 2;
    auto bigger = std::make_unique_for_overwrite<uint8_t[]>(capacity);
    if (used > 0) std::memcpy(bigger.get(), data(), used);
    data_ = std::move(bigger);
    capacity_ = capacity;
    begin_ = 0;
    end_ = used;
  }

  std::unique_ptr<uint8_t[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace shadowrelay::relay
