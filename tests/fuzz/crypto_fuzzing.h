// SPDX-License-Identifier: Apache-2.0
#pragma once
// Shared by the crypto fuzz targets: picking a method and a key, and damaging a message on the
// wire. The targets seal real messages with fixed keys and then damage them, because random
// bytes never get past the first tag: that is how a fuzzer reaches the code behind it.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead2022.h"
#include "crypto/identity_header.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/openssl_aead.h"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {

/// The provider every target uses (sanitizer builds have no other).
inline const crypto::AeadProvider& provider() { return crypto::opensslProvider(); }

/// One method of `edition`, chosen by the input.
inline const crypto::MethodInfo& pickMethod(FuzzInput& in, crypto::Edition edition) {
  std::vector<const crypto::MethodInfo*> methods;
  for (const crypto::MethodInfo& m : crypto::methodTable()) {
    if (m.edition == edition) methods.push_back(&m);
  }
  return *methods[in.pick(methods.size())];
}

/// A fixed key of the method's size, one per `id`: the input picks among a few keys (any key
/// works the same; letting the fuzzer choose all its bytes would only widen its search).
inline crypto::MasterKey testKey(const crypto::MethodInfo& method, uint8_t id) {
  std::vector<uint8_t> key(method.key_size);
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(id * 31 + i * 7 + 1);
  return crypto::MasterKey(key);
}

/// Shadowsocks 2022: the keys of a case. The server's key (its identity key when it has users),
/// a configured user, and a stranger whom no table knows.
struct Keys2022 {
  Keys2022(const crypto::MethodInfo& method, uint8_t id)
      : psk(testKey(method, id)), user(testKey(method, id + 1)), stranger(testKey(method, id + 2)) {
    users.add(user.bytes());
  }
  crypto::MasterKey psk;
  crypto::MasterKey user;
  crypto::MasterKey stranger;
  crypto::UserKeyTable users;  // the server's users: `user`
};

/// Shadowsocks 2022: the sender's clock (Unix seconds), and the receiver's, skewed by the input
/// by up to 40 s either way (fresh: within the 30 s a receiver allows).
inline constexpr uint64_t kSenderClock = 1'700'000'000;
struct ReceiverClock {
  uint64_t now = kSenderClock;
  bool fresh = true;

  static ReceiverClock read(FuzzInput& in) {
    const int64_t skew = static_cast<int64_t>(in.upTo(80)) - 40;
    const auto limit = static_cast<int64_t>(crypto::kMaxTimestampSkew);
    return {static_cast<uint64_t>(static_cast<int64_t>(kSenderClock) + skew),
            skew >= -limit && skew <= limit};
  }
};

/// An address the encoders can write: IPv4, IPv6, or a host name of 1..255 bytes.
inline crypto::SocksAddress readAddress(FuzzInput& in) {
  const uint16_t port = static_cast<uint16_t>(in.upTo(UINT16_MAX));
  switch (in.pick(3)) {
    case 0: {
      const std::vector<uint8_t> ip = in.exact(4);
      return crypto::SocksAddress::ipv4({ip[0], ip[1], ip[2], ip[3]}, port);
    }
    case 1: {
      std::array<uint8_t, 16> ip{};
      const std::vector<uint8_t> bytes = in.exact(16);
      std::copy(bytes.begin(), bytes.end(), ip.begin());
      return crypto::SocksAddress::ipv6(ip, port);
    }
    default: {
      // At least one byte: an empty name is not an address (the input may have run out).
      std::vector<uint8_t> host = in.exact(1);
      const std::span<const uint8_t> more = in.bytes(in.upTo(254));
      host.insert(host.end(), more.begin(), more.end());
      return crypto::SocksAddress::domain(std::string(host.begin(), host.end()), port);
    }
  }
}

/// What happens to a message on the wire before the receiver sees it: cut short, one byte
/// changed, both, or neither.
class Damage {
 public:
  static Damage read(FuzzInput& in) {
    Damage d;
    const uint8_t kind = in.byte() % 4;
    d.truncate_ = (kind & 1) != 0;
    d.keep_ = static_cast<uint16_t>(in.upTo(UINT16_MAX));
    d.corrupt_ = (kind & 2) != 0;
    d.at_ = static_cast<uint16_t>(in.upTo(UINT16_MAX));
    d.mask_ = static_cast<uint8_t>(1 + in.upTo(254));
    return d;
  }

  /// Applies it to `wire`; afterwards truncated() and corrupted() say what it did (nothing to
  /// an empty message).
  void apply(std::vector<uint8_t>& wire) {
    if (truncate_ && !wire.empty()) {
      wire.resize(keep_ % wire.size());
      truncated_ = true;
    }
    if (corrupt_ && !wire.empty()) {
      wire[at_ % wire.size()] ^= mask_;
      corrupted_ = true;
    }
  }
  bool truncated() const { return truncated_; }
  bool corrupted() const { return corrupted_; }
  bool intact() const { return !truncated_ && !corrupted_; }

 private:
  bool truncate_ = false;
  bool corrupt_ = false;
  uint16_t keep_ = 0;
  uint16_t at_ = 0;
  uint8_t mask_ = 1;
  bool truncated_ = false;
  bool corrupted_ = false;
};

}  // namespace shadowrelay::fuzzing
