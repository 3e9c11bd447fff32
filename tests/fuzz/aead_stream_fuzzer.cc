// SPDX-License-Identifier: Apache-2.0
// The SIP004 (AEAD-2017) stream decoder (crypto/aead_stream) under random splits. The input
// picks a method, a key and either
//  - a real stream: plaintext sealed by AeadStreamEncoder (chunk size and write sizes chosen
//    by the input), then maybe cut short and/or one byte changed (tests/fuzz/crypto_fuzzing.h),
//  - or raw bytes as the stream.
// Decoded in one piece and in pieces cut where the input says, as a relay feeds it:
//  - both give the same status, and when it is Ok the same plaintext;
//  - the plaintext is never longer than the stream and always a prefix of what was sealed;
//  - an intact stream decodes to exactly its plaintext; a damaged byte is always an error
//    unless the stream was also cut short (or is a bare salt); a stream only cut short is Ok;
//  - streamOpensWith (a multi-user port's trial) agrees with the decoder's first length header.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "crypto/aead_stream.h"
#include "crypto/key_derivation.h"
#include "tests/crypto/decode_in_pieces.h"
#include "tests/fuzz/crypto_fuzzing.h"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {
namespace {

using crypto::DecodeStatus;

struct Decoded {
  DecodeStatus status = DecodeStatus::Ok;
  std::vector<uint8_t> plain;
  bool authenticated = false;
};

Decoded decode(const crypto::MethodInfo& method, const crypto::MasterKey& key,
               const std::vector<uint8_t>& wire, const std::vector<size_t>& cuts) {
  crypto::AeadStreamDecoder decoder(method, provider(), key.bytes());
  Decoded d;
  d.status = testing::decodeInPieces(
      wire, cuts, crypto::kMaxChunkPayload, DecodeStatus::Ok,
      [&decoder](std::span<const uint8_t> in, std::span<uint8_t> out,
                 crypto::CodecProgress* progress) { return decoder.decode(in, out, progress); },
      &d.plain);
  d.authenticated = decoder.authenticated();
  return d;
}

/// Seals `plain` in `writes` encode() calls of about equal size.
std::vector<uint8_t> seal(const crypto::MethodInfo& method, const crypto::MasterKey& key,
                          std::span<const uint8_t> salt, size_t max_payload, size_t writes,
                          std::span<const uint8_t> plain) {
  crypto::AeadStreamEncoder encoder(method, provider(), key.bytes(), salt);
  SR_FUZZ_CHECK(encoder.valid());
  encoder.setMaxPayloadForTest(max_payload);
  std::vector<uint8_t> wire;
  const size_t step = plain.size() / writes + 1;
  for (size_t pos = 0; pos < plain.size() || wire.empty();) {
    const std::span<const uint8_t> part = plain.subspan(pos, std::min(step, plain.size() - pos));
    std::vector<uint8_t> out(encoder.maxEncodedSize(part.size()));
    crypto::CodecProgress progress;
    SR_FUZZ_CHECK(encoder.encode(part, out, &progress));
    SR_FUZZ_CHECK(progress.consumed == part.size() && progress.produced <= out.size());
    wire.insert(wire.end(), out.begin(), out.begin() + progress.produced);
    pos += part.size();
  }
  return wire;
}

}  // namespace
}  // namespace shadowrelay::fuzzing

SR_FUZZ_TARGET(in) {
  const crypto::MethodInfo& method = pickMethod(in, crypto::Edition::Aead2017);
  const crypto::MasterKey key = testKey(method, in.byte() % 4);
  const bool real = in.boolean();
  const std::vector<uint8_t> salt = in.exact(method.salt_size);
  const size_t max_payload = 1 + in.upTo(crypto::kMaxChunkPayload - 1);
  const size_t writes = 1 + in.pick(4);
  Damage damage = Damage::read(in);
  const std::vector<uint16_t> seeds = in.cutSeeds(12);
  const std::span<const uint8_t> plain = in.rest();

  std::vector<uint8_t> wire(plain.begin(), plain.end());
  if (real) {
    wire = seal(method, key, salt, max_payload, writes, plain);
    damage.apply(wire);
  }
  const Decoded whole = decode(method, key, wire, {});
  const Decoded pieces = decode(method, key, wire, cutsFor(seeds, wire.size()));
  SR_FUZZ_CHECK(whole.status == pieces.status);
  if (whole.status == crypto::DecodeStatus::Ok) SR_FUZZ_CHECK(whole.plain == pieces.plain);
  for (const Decoded* d : {&whole, &pieces}) {
    SR_FUZZ_CHECK(d->plain.size() <= wire.size());
    if (real) SR_FUZZ_CHECK(isPrefix(d->plain, plain));
  }
  if (wire.size() >= crypto::streamProbeSize(method)) {
    SR_FUZZ_CHECK(crypto::streamOpensWith(method, provider(), key.bytes(), wire) ==
                  whole.authenticated);
  }
  if (!real) return;
  if (damage.intact()) {
    SR_FUZZ_CHECK(whole.status == crypto::DecodeStatus::Ok);
    SR_FUZZ_CHECK(whole.plain.size() == plain.size());
  } else if (!damage.truncated() && !plain.empty()) {
    // (A stream of no data is its salt alone, which no tag covers.)
    SR_FUZZ_CHECK(whole.status != crypto::DecodeStatus::Ok);
  } else if (!damage.corrupted()) {
    SR_FUZZ_CHECK(whole.status == crypto::DecodeStatus::Ok);
  }
}
