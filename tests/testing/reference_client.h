// SPDX-License-Identifier: Apache-2.0
#pragma once
// A reference Shadowsocks (SIP004, PROTOCOL.md §1.5-§1.7) peer for tests, built from the crypto/
// primitives only: what a client sends to our server, or what a server answers our client.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "crypto/address.h"
#include "crypto/aead.h"
#include "crypto/aead_stream.h"
#include "crypto/method.h"

namespace shadowrelay::relay::testing {

/// 127.0.0.1:`port` as a Shadowsocks target.
crypto::SocksAddress loopbackTarget(uint16_t port);
/// The address header of `address` (ATYP, host, port).
std::vector<uint8_t> addressBytes(const crypto::SocksAddress& address);
/// `a` followed by `b`.
std::vector<uint8_t> concat(std::span<const uint8_t> a, std::span<const uint8_t> b);

/// Bytes on the wire of one chunk carrying `payload` bytes (length header, payload, two tags),
/// plus the salt when it is the stream's first.
size_t chunkWireSize(const crypto::MethodInfo& method, size_t payload, bool first);

/// Both directions of one TCP connection: seal() makes the wire bytes of what this side sends
/// (its salt first), open() takes the other side's wire bytes in any split.
class ReferenceStream {
 public:
  /// `salt` empty: a random one. `provider` must outlive the stream.
  ReferenceStream(const crypto::MethodInfo& method, const crypto::AeadProvider& provider,
                  std::span<const uint8_t> master, std::span<const uint8_t> salt = {});

  /// Chunks of at most `n` payload bytes from now on (a header split across chunks).
  void setMaxPayload(size_t n) { encoder_.setMaxPayloadForTest(n); }
  std::vector<uint8_t> seal(std::span<const uint8_t> plain);
  std::vector<uint8_t> seal(const std::string& plain);
  /// False once the bytes fail to open (sticky).
  bool open(std::span<const uint8_t> wire);
  const std::vector<uint8_t>& opened() const { return opened_; }
  std::string openedText() const { return {opened_.begin(), opened_.end()}; }
  /// The salt this side sends.
  std::span<const uint8_t> salt() const { return encoder_.salt(); }

 private:
  crypto::AeadStreamEncoder encoder_;
  crypto::AeadStreamDecoder decoder_;
  std::vector<uint8_t> unopened_;  // a partial unit of the other side
  std::vector<uint8_t> opened_;
  bool failed_ = false;
};

/// One SIP004 UDP packet: salt | Seal(plain).
std::vector<uint8_t> sealDatagram(const crypto::MethodInfo& method,
                                  const crypto::AeadProvider& provider,
                                  std::span<const uint8_t> master, std::span<const uint8_t> plain);
/// The plaintext of a packet, or nullopt if it does not open with `master`.
std::optional<std::vector<uint8_t>> openDatagram(const crypto::MethodInfo& method,
                                                 const crypto::AeadProvider& provider,
                                                 std::span<const uint8_t> master,
                                                 std::span<const uint8_t> packet);

}  // namespace shadowrelay::relay::testing
