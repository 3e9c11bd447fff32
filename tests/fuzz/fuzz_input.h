// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a fuzz target needs besides its own code: FuzzInput, which turns the fuzzer's bytes into
// decisions (a method, a split point, a mutation) so that one input drives a structured test,
// and SR_FUZZ_CHECK, which turns a broken invariant into a crash libFuzzer records.
//
// The same targets build two ways (tests/fuzz/fuzz.bzl): as libFuzzer binaries under
// --config=fuzz (clang), and as tests that replay the corpus under gcc in every configuration.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

/// Aborts with the failed condition and where it is: libFuzzer saves the input as a crash.
#define SR_FUZZ_CHECK(cond)                                                                  \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

/// Defines the fuzz target: `SR_FUZZ_TARGET(in) { ... }` is the body that gets each input as a
/// FuzzInput `in`, inside namespace shadowrelay::fuzzing.
#define SR_FUZZ_TARGET(in)                                                  \
  namespace shadowrelay::fuzzing {                                          \
  void fuzzOne(FuzzInput& in);                                              \
  }                                                                         \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    shadowrelay::fuzzing::FuzzInput input(data, size);                      \
    shadowrelay::fuzzing::fuzzOne(input);                                   \
    return 0;                                                               \
  }                                                                         \
  void shadowrelay::fuzzing::fuzzOne(FuzzInput& in)

namespace shadowrelay::fuzzing {

/// Reads decisions from the front of the fuzzer's input. Once the input is used up every
/// read returns zero (or empty), so any input, even an empty one, is a complete test: the
/// fuzzer never needs to find a minimum length first. Small integers take one byte each, so
/// a mutation of one byte changes one decision.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data, size) {}
  /// All of the input, whatever was read already.
  std::span<const uint8_t> all() const { return data_; }

  size_t remaining() const { return data_.size() - pos_; }

  uint8_t byte() { return pos_ < data_.size() ? data_[pos_++] : 0; }
  bool boolean() { return (byte() & 1) != 0; }

  /// An integer in [0, max]: one byte when max < 256, two when max < 65536, else eight.
  uint64_t upTo(uint64_t max) {
    if (max == 0) return 0;
    uint64_t v = 0;
    const int width = max < 256 ? 1 : max < 65536 ? 2 : 8;
    for (int i = 0; i < width; ++i) v = v << 8 | byte();
    return max == UINT64_MAX ? v : v % (max + 1);
  }

  /// One of `n` choices (n >= 1).
  size_t pick(size_t n) { return static_cast<size_t>(upTo(n - 1)); }

  /// Up to `n` bytes (fewer when the input ends), as a view into the input.
  std::span<const uint8_t> bytes(size_t n) {
    const size_t take = std::min(n, remaining());
    std::span<const uint8_t> out = data_.subspan(pos_, take);
    pos_ += take;
    return out;
  }

  /// Exactly `n` bytes: what the input has, then zeros.
  std::vector<uint8_t> exact(size_t n) {
    std::span<const uint8_t> got = bytes(n);
    std::vector<uint8_t> out(got.begin(), got.end());
    out.resize(n, 0);
    return out;
  }

  /// A length-prefixed piece: a length up to `max` (see upTo), then that many bytes.
  std::span<const uint8_t> piece(size_t max) { return bytes(static_cast<size_t>(upTo(max))); }

  /// Everything left.
  std::span<const uint8_t> rest() { return bytes(remaining()); }

  /// Where to split a stream whose size is not known yet (it may be made from the rest of
  /// the input): up to `max_cuts` positions, mapped onto the stream by cutsFor().
  std::vector<uint16_t> cutSeeds(size_t max_cuts) {
    std::vector<uint16_t> out(pick(max_cuts + 1));
    for (uint16_t& c : out) c = static_cast<uint16_t>(upTo(UINT16_MAX));
    return out;
  }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

/// Ascending offsets in [0, size] from cutSeeds(): where a stream of `size` bytes is split
/// into pieces, as reads from a socket would split it.
inline std::vector<size_t> cutsFor(const std::vector<uint16_t>& seeds, size_t size) {
  std::vector<size_t> out;
  for (uint16_t s : seeds) out.push_back(s % (size + 1));
  std::sort(out.begin(), out.end());
  return out;
}

/// Whether `prefix` is a prefix of `whole`.
template <typename A, typename B>
bool isPrefix(const A& prefix, const B& whole) {
  return prefix.size() <= whole.size() && std::equal(prefix.begin(), prefix.end(), whole.begin());
}

}  // namespace shadowrelay::fuzzing

namespace shadowrelay::fuzzing {

/// What a parser of a message at the start of its input said: Ok with the message (which
/// includes its size), NeedMore, or Invalid.
template <typename Status, typename Message>
struct Parsed {
  Status status;
  Message message{};  // meaningful when status is Ok
};

/// Checks the contract every parser here has ("never reads past its input", "NeedMore until
/// the whole message is there") against its verdict on each prefix of `in`:
///  - whole input Ok with a message of `size` bytes: shorter prefixes are NeedMore, longer ones
///    give the same message (bytes after a message change nothing);
///  - whole input NeedMore: so is every prefix (a prefix of an incomplete message is one);
///  - whole input Invalid: no prefix is Ok (and a prefix may be NeedMore or Invalid).
/// `parse(span)` returns a Parsed; `size(message)` is the bytes the message took.
template <typename Status, typename Parse, typename Size>
void checkPrefixes(std::span<const uint8_t> in, Status ok, Status need_more, Parse&& parse,
                   Size&& size) {
  const auto whole = parse(in);
  const size_t whole_size = whole.status == ok ? size(whole.message) : 0;
  if (whole.status == ok) SR_FUZZ_CHECK(whole_size <= in.size());
  for (size_t n = 0; n < in.size(); ++n) {
    const auto part = parse(in.first(n));
    if (whole.status == ok) {
      if (n < whole_size) {
        SR_FUZZ_CHECK(part.status == need_more);
      } else {
        SR_FUZZ_CHECK(part.status == ok && part.message == whole.message);
      }
    } else if (whole.status == need_more) {
      SR_FUZZ_CHECK(part.status == need_more);
    } else {
      SR_FUZZ_CHECK(part.status != ok);
    }
  }
}

}  // namespace shadowrelay::fuzzing
