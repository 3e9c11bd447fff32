// SPDX-License-Identifier: Apache-2.0
// SIP004 UDP packets (crypto/udp_codec). The input picks a method, a key and either a real
// packet (its plaintext sealed by UdpCodec, then maybe cut short and/or one byte changed) or
// raw bytes as the packet. Opened into a separate buffer and in place (out aliasing the packet
// after its salt, as the UDP server does), by one codec reused across packets:
//  - both openings agree, and opening twice gives the same (the codec rekeys per packet);
//  - the plaintext is the packet minus salt and tag, never more;
//  - an intact packet opens to exactly its plaintext; a damaged one never opens;
//  - a packet opened with another key does not open.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "crypto/key_derivation.h"
#include "crypto/udp_codec.h"
#include "tests/fuzz/crypto_fuzzing.h"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {
namespace {

struct Opened {
  std::optional<size_t> size;
  std::vector<uint8_t> plain;
  bool operator==(const Opened&) const = default;
};

Opened openCopy(crypto::UdpCodec& codec, const crypto::MasterKey& key,
                const std::vector<uint8_t>& packet) {
  std::vector<uint8_t> out(packet.size());
  Opened o;
  o.size = codec.open(key.bytes(), packet, out);
  if (o.size) o.plain.assign(out.begin(), out.begin() + static_cast<ptrdiff_t>(*o.size));
  return o;
}

Opened openInPlace(crypto::UdpCodec& codec, const crypto::MasterKey& key,
                   std::vector<uint8_t> packet) {
  const size_t salt = codec.method().salt_size;
  Opened o;
  if (packet.size() < salt) {
    o.size = codec.open(key.bytes(), packet, {});
    return o;
  }
  const std::span<uint8_t> out = std::span(packet).subspan(salt);
  o.size = codec.open(key.bytes(), packet, out);
  if (o.size) o.plain.assign(out.begin(), out.begin() + static_cast<ptrdiff_t>(*o.size));
  return o;
}

}  // namespace
}  // namespace shadowrelay::fuzzing

SR_FUZZ_TARGET(in) {
  const crypto::MethodInfo& method = pickMethod(in, crypto::Edition::Aead2017);
  const uint8_t key_id = in.byte() % 4;
  const crypto::MasterKey key = testKey(method, key_id);
  const crypto::MasterKey other = testKey(method, key_id + 1);
  const bool real = in.boolean();
  Damage damage = Damage::read(in);
  const std::span<const uint8_t> plain = in.rest();

  crypto::UdpCodec codec(method, provider());
  std::vector<uint8_t> packet(plain.begin(), plain.end());
  if (real) {
    packet.resize(plain.size() + codec.overhead());
    SR_FUZZ_CHECK(codec.seal(key.bytes(), plain, std::span(packet).first(packet.size() - 1)) == 0);
    SR_FUZZ_CHECK(codec.seal(key.bytes(), plain, packet) == packet.size());
    damage.apply(packet);
  }
  const Opened copy = openCopy(codec, key, packet);
  SR_FUZZ_CHECK(openInPlace(codec, key, packet) == copy);
  SR_FUZZ_CHECK(openCopy(codec, key, packet) == copy);
  if (copy.size) SR_FUZZ_CHECK(*copy.size + codec.overhead() == packet.size());
  if (!real) return;
  if (damage.intact()) {
    SR_FUZZ_CHECK(copy.size &&
                  std::equal(copy.plain.begin(), copy.plain.end(), plain.begin(), plain.end()));
    SR_FUZZ_CHECK(!openCopy(codec, other, packet).size);
  } else {
    SR_FUZZ_CHECK(!copy.size);
  }
}
