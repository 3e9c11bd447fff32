// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "crypto/aead_stream.h"

namespace shadowrelay::testing {

/// Feeds `wire` to an incremental decoder in pieces cut at `cuts` (ascending offsets), keeping
/// the unconsumed bytes and offering them again with the next piece appended, as a relay does.
/// `decode(pending, out, progress)` returns a status; `ok` is its success value. The plaintext
/// produced goes to `plain` (also what came before an error). @return the first error, or ok.
template <typename Status, typename Decode>
Status decodeInPieces(const std::vector<uint8_t>& wire, const std::vector<size_t>& cuts,
                      size_t out_capacity, Status ok, Decode&& decode,
                      std::vector<uint8_t>* plain) {
  std::vector<uint8_t> pending;
  std::vector<uint8_t> out(out_capacity);
  size_t pos = 0;
  auto feed = [&](size_t upto) -> Status {
    pending.insert(pending.end(), wire.begin() + pos, wire.begin() + upto);
    pos = upto;
    while (true) {
      crypto::CodecProgress p;
      const Status s = decode(std::span<const uint8_t>(pending), std::span<uint8_t>(out), &p);
      plain->insert(plain->end(), out.begin(), out.begin() + p.produced);
      pending.erase(pending.begin(), pending.begin() + p.consumed);
      if (s != ok) return s;
      if (p.consumed == 0) return ok;
    }
  };
  for (size_t cut : cuts) {
    const Status s = feed(cut);
    if (s != ok) return s;
  }
  return feed(wire.size());
}

}  // namespace shadowrelay::testing
