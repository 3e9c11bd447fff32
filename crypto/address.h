// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace shadowrelay::crypto {

/// The Shadowsocks / SOCKS5 address header (PROTOCOL.md §1.7, RFC 1928 §5):
///
///   ATYP 0x01 | IPv4 [4] | port [2]
///   ATYP 0x03 | N [1] | host [N, 1..255] | port [2]
///   ATYP 0x04 | IPv6 [16] | port [2]
struct SocksAddress {
  enum class Type : uint8_t { IPv4 = 0x01, Domain = 0x03, IPv6 = 0x04 };

  Type type = Type::IPv4;
  std::array<uint8_t, 16> ip{};  // first 4 bytes for IPv4
  std::string host;              // for Domain
  uint16_t port = 0;

  static SocksAddress ipv4(std::array<uint8_t, 4> addr, uint16_t port);
  static SocksAddress ipv6(std::array<uint8_t, 16> addr, uint16_t port);
  static SocksAddress domain(std::string host, uint16_t port);

  /// Encoded size in bytes.
  size_t size() const;
  /// "1.2.3.4:80", "[::1]:443", "example.com:80".
  std::string toString() const;
  /// The host part only (no port, no brackets).
  std::string hostString() const;

  bool operator==(const SocksAddress&) const = default;
};

enum class AddressParse { Ok, NeedMore, Invalid };

/// Parses one header from the start of `in`; never reads past it. On Ok, `*consumed` is the
/// header size. A zero-length host or an unknown ATYP is Invalid.
AddressParse parseAddress(std::span<const uint8_t> in, SocksAddress* out, size_t* consumed);

/// Writes the header; returns its size, or 0 if `out` is too small or a host is 0 or > 255 bytes.
size_t writeAddress(const SocksAddress& address, std::span<uint8_t> out);

}  // namespace shadowrelay::crypto
