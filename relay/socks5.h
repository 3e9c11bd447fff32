// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/address.h"

/// SOCKS5 wire formats (RFC 1928; PROTOCOL.md Appendix A). Pure functions over byte spans; they
/// never read past their input.
namespace shadowrelay::relay::socks5 {

inline constexpr uint8_t kVersion = 0x05;
inline constexpr uint8_t kMethodNoAuth = 0x00;
inline constexpr uint8_t kMethodNoAcceptable = 0xff;

enum class Parse { Ok, NeedMore, Invalid };

/// GostUdpTunnel (0xF3) is gost's extended command for UDP over TCP: the datagrams then travel
/// as UdpFrames on the control connection (docs/UDP_OVER_TCP.md).
enum class Command : uint8_t {
  Connect = 0x01,
  Bind = 0x02,
  UdpAssociate = 0x03,
  GostUdpTunnel = 0xF3,
};

enum class Reply : uint8_t {
  Succeeded = 0x00,
  GeneralFailure = 0x01,
  NotAllowed = 0x02,
  NetworkUnreachable = 0x03,
  HostUnreachable = 0x04,
  ConnectionRefused = 0x05,
  TtlExpired = 0x06,
  CommandNotSupported = 0x07,
  AddressTypeNotSupported = 0x08,
};

struct Greeting {
  bool offers_no_auth = false;
  size_t size = 0;
};

/// VER NMETHODS METHODS... Invalid when VER != 5 or NMETHODS == 0.
Parse parseGreeting(std::span<const uint8_t> in, Greeting* out);

struct Request {
  uint8_t command = 0;
  crypto::SocksAddress address;
  size_t size = 0;
  /// The bytes ATYP..PORT, to be copied into the Shadowsocks address header.
  std::span<const uint8_t> raw_address;
};

/// VER CMD RSV ATYP DST.ADDR DST.PORT. On Invalid, *reply says which reply to send
/// (AddressTypeNotSupported for an unknown ATYP, GeneralFailure otherwise).
Parse parseRequest(std::span<const uint8_t> in, Request* out, Reply* reply);

/// VER REP RSV ATYP BND.ADDR BND.PORT; returns its size, 0 if `out` is too small.
size_t writeReply(Reply reply, const crypto::SocksAddress& bound, std::span<uint8_t> out);

struct UdpHeader {
  uint8_t frag = 0;
  crypto::SocksAddress address;
  size_t size = 0;  // RSV RSV FRAG + address header
};

/// The header of a UDP relay datagram: RSV(2) FRAG ATYP DST.ADDR DST.PORT.
Parse parseUdpHeader(std::span<const uint8_t> in, UdpHeader* out);

// gost-style UDP over TCP (docs/UDP_OVER_TCP.md): a UDP relay datagram on the control connection,
// its RSV field holding the length of DATA (big-endian; the header is not counted):
//   LEN(2) FRAG ATYP DST.ADDR DST.PORT DATA(LEN)
// FRAG is 0x00, or 0xFF (gost 3 marks its tunnel frames so); nothing else is a frame.

inline constexpr uint8_t kGostTunnelFrag = 0xFF;

struct UdpFrame {
  crypto::SocksAddress address;
  size_t header = 0;  // LEN FRAG + the address header: DATA starts here
  size_t data = 0;    // LEN
  size_t size() const { return header + data; }
};

/// One frame from the start of `in` (a stream: more may follow). NeedMore until the whole frame
/// is there; Invalid for FRAG other than 0x00/0xFF or a bad address header (as soon as the
/// bytes that show it are in).
Parse parseUdpFrame(std::span<const uint8_t> in, UdpFrame* out);

/// Writes LEN FRAG(0) and the address header of a frame carrying `data` bytes; returns the
/// header's size, 0 if `out` is too small, `data` > 0xFFFF or the address cannot be written.
size_t writeUdpFrameHeader(const crypto::SocksAddress& address, size_t data,
                           std::span<uint8_t> out);

/// Turns a UDP relay datagram (RSV RSV FRAG ATYP ... DATA, `data` bytes of DATA) in place into
/// a frame: RSV := `data`, FRAG := 0. False if `data` > 0xFFFF.
bool frameUdpDatagram(std::span<uint8_t> datagram, size_t data);

}  // namespace shadowrelay::relay::socks5
