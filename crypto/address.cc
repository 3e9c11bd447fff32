// SPDX-License-Identifier: Apache-2.0
#include "crypto/address.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace shadowrelay::crypto {

SocksAddress SocksAddress::ipv4(std::array<uint8_t, 4> addr, uint16_t port) {
  SocksAddress a;
  a.type = Type::IPv4;
  std::copy(addr.begin(), addr.end(), a.ip.begin());
  a.port = port;
  return a;
}

SocksAddress SocksAddress::ipv6(std::array<uint8_t, 16> addr, uint16_t port) {
  SocksAddress a;
  a.type = Type::IPv6;
  a.ip = addr;
  a.port = port;
  return a;
}

SocksAddress SocksAddress::domain(std::string host, uint16_t port) {
  SocksAddress a;
  a.type = Type::Domain;
  a.host = std::move(host);
  a.port = port;
  return a;
}

size_t SocksAddress::size() const {
  switch (type) {
    case Type::IPv4:
      return 1 + 4 + 2;
    case Type::IPv6:
      return 1 + 16 + 2;
    case Type::Domain:
      return 1 + 1 + host.size() + 2;
  }
  return 0;
}

std::string SocksAddress::hostString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (type) {
    case Type::IPv4:
      ::inet_ntop(AF_INET, ip.data(), buf, sizeof(buf));
      return buf;
    case Type::IPv6:
      ::inet_ntop(AF_INET6, ip.data(), buf, sizeof(buf));
      return buf;
    case Type::Domain:
      return host;
  }
  return {};
}

std::string SocksAddress::toString() const {
  if (type == Type::IPv6) {
    return absl::StrCat("[", hostString(), "]:", port);
  }
  return absl::StrCat(hostString(), ":", port);
}

AddressParse parseAddress(std::span<const uint8_t> in, SocksAddress* out, size_t* consumed) {
  if (in.empty()) {
    return AddressParse::NeedMore;
  }
  size_t host_len = 0;
  size_t header = 1;
  switch (in[0]) {
    case 0x01:
      host_len = 4;
      break;
    case 0x04:
      host_len = 16;
      break;
    case 0x03:
      if (in.size() < 2) {
        return AddressParse::NeedMore;
      }
      host_len = in[1];
      header = 2;
      if (host_len == 0) {
        return AddressParse::Invalid;
      }
      break;
    default:
      return AddressParse::Invalid;
  }
  const size_t total = header + host_len + 2;
  if (in.size() < total) {
    return AddressParse::NeedMore;
  }
  SocksAddress a;
  a.type = static_cast<SocksAddress::Type>(in[0]);
  if (a.type == SocksAddress::Type::Domain) {
    a.host.assign(reinterpret_cast<const char*>(in.data() + header), host_len);
  } else {
    std::memcpy(a.ip.data(), in.data() + header, host_len);
  }
  a.port = static_cast<uint16_t>(in[header + host_len] << 8 | in[header + host_len + 1]);
  *out = std::move(a);
  *consumed = total;
  return AddressParse::Ok;
}

size_t writeAddress(const SocksAddress& address, std::span<uint8_t> out) {
  const size_t total = address.size();
  if (out.size() < total ||
      (address.type == SocksAddress::Type::Domain &&
       (address.host.empty() || address.host.size() > 255))) {
    return 0;
  }
  size_t w = 0;
  out[w++] = static_cast<uint8_t>(address.type);
  switch (address.type) {
    case SocksAddress::Type::IPv4:
      std::memcpy(out.data() + w, address.ip.data(), 4);
      w += 4;
      break;
    case SocksAddress::Type::IPv6:
      std::memcpy(out.data() + w, address.ip.data(), 16);
      w += 16;
      break;
    case SocksAddress::Type::Domain:
      out[w++] = static_cast<uint8_t>(address.host.size());
      std::memcpy(out.data() + w, address.host.data(), address.host.size());
      w += address.host.size();
      break;
  }
  out[w++] = static_cast<uint8_t>(address.port >> 8);
  out[w++] = static_cast<uint8_t>(address.port);
  return w;
}

}  // namespace shadowrelay::crypto
