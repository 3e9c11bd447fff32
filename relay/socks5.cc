// SPDX-License-Identifier: Apache-2.0
#include "relay/socks5.h"

namespace shadowrelay::relay::socks5 {

Parse parseGreeting(std::span<const uint8_t> in, Greeting* out) {
  if (in.size() < 2) {
    return in.empty() || in[0] == kVersion ? Parse::NeedMore : Parse::Invalid;
  }
  if (in[0] != kVersion || in[1] == 0) {
    return Parse::Invalid;
  }
  const size_t n = in[1];
  if (in.size() < 2 + n) {
    return Parse::NeedMore;
  }
  out->offers_no_auth = false;
  for (size_t i = 0; i < n; ++i) {
    if (in[2 + i] == kMethodNoAuth) {
      out->offers_no_auth = true;
    }
  }
  out->size = 2 + n;
  return Parse::Ok;
}

Parse parseRequest(std::span<const uint8_t> in, Request* out, Reply* reply) {
  *reply = Reply::GeneralFailure;
  if (!in.empty() && in[0] != kVersion) {
    return Parse::Invalid;
  }
  if (in.size() < 4) {
    return Parse::NeedMore;
  }
  if (in[2] != 0x00) {
    return Parse::Invalid;
  }
  size_t consumed = 0;
  switch (crypto::parseAddress(in.subspan(3), &out->address, &consumed)) {
    case crypto::AddressParse::NeedMore:
      return Parse::NeedMore;
    case crypto::AddressParse::Invalid:
      if (in[3] != 0x01 && in[3] != 0x03 && in[3] != 0x04) {
        *reply = Reply::AddressTypeNotSupported;
      }
      return Parse::Invalid;
    case crypto::AddressParse::Ok:
      break;
  }
  out->command = in[1];
  out->size = 3 + consumed;
  out->raw_address = in.subspan(3, consumed);
  return Parse::Ok;
}

size_t writeReply(Reply reply, const crypto::SocksAddress& bound, std::span<uint8_t> out) {
  if (out.size() < 3 + bound.size()) {
    return 0;
  }
  out[0] = kVersion;
  out[1] = static_cast<uint8_t>(reply);
  out[2] = 0x00;
  const size_t n = crypto::writeAddress(bound, out.subspan(3));
  return n == 0 ? 0 : 3 + n;
}

Parse parseUdpHeader(std::span<const uint8_t> in, UdpHeader* out) {
  if (in.size() < 3) {
    return Parse::NeedMore;
  }
  if (in[0] != 0 || in[1] != 0) {
    return Parse::Invalid;
  }
  size_t consumed = 0;
  switch (crypto::parseAddress(in.subspan(3), &out->address, &consumed)) {
    case crypto::AddressParse::NeedMore:
      return Parse::NeedMore;
    case crypto::AddressParse::Invalid:
      return Parse::Invalid;
    case crypto::AddressParse::Ok:
      break;
  }
  out->frag = in[2];
  out->size = 3 + consumed;
  return Parse::Ok;
}

Parse parseUdpFrame(std::span<const uint8_t> in, UdpFrame* out) {
  if (in.size() < 3) {
    return Parse::NeedMore;
  }
  if (in[2] != 0x00 && in[2] != kGostTunnelFrag) {
    return Parse::Invalid;
  }
  size_t consumed = 0;
  switch (crypto::parseAddress(in.subspan(3), &out->address, &consumed)) {
    case crypto::AddressParse::NeedMore:
      return Parse::NeedMore;
    case crypto::AddressParse::Invalid:
      return Parse::Invalid;
    case crypto::AddressParse::Ok:
      break;
  }
  out->header = 3 + consumed;
  out->data = (size_t{in[0]} << 8) | in[1];
  return in.size() < out->size() ? Parse::NeedMore : Parse::Ok;
}

size_t writeUdpFrameHeader(const crypto::SocksAddress& address, size_t data,
                           std::span<uint8_t> out) {
  if (data > 0xFFFF || out.size() < 3) {
    return 0;
  }
  const size_t n = crypto::writeAddress(address, out.subspan(3));
  if (n == 0) {
    return 0;
  }
  out[0] = static_cast<uint8_t>(data >> 8);
  out[1] = static_cast<uint8_t>(data);
  out[2] = 0x00;
  return 3 + n;
}

bool frameUdpDatagram(std::span<uint8_t> datagram, size_t data) {
  if (data > 0xFFFF || datagram.size() < 3) {
    return false;
  }
  datagram[0] = static_cast<uint8_t>(data >> 8);
  datagram[1] = static_cast<uint8_t>(data);
  datagram[2] = 0x00;
  return true;
}

}  // namespace shadowrelay::relay::socks5
