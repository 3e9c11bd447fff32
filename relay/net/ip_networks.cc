// SPDX-License-Identifier: Apache-2.0
#include "relay/net/ip_networks.h"

#include <netinet/in.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "dns/ip_address.h"

namespace shadowrelay::relay {
namespace {

constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

absl::Status badSpec(absl::string_view spec, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("\"", spec, "\": ", why));
}

}  // namespace

absl::StatusOr<IpNetworks> IpNetworks::parse(const std::vector<std::string>& specs) {
  IpNetworks out;
  for (const std::string& spec : specs) {
    for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
      part = absl::StripAsciiWhitespace(part);
      const size_t slash = part.find('/');
      const auto address = dns::IpAddress::parse(part.substr(0, slash));
      if (!address) return badSpec(part, "not an IPv4 or IPv6 address");
      const int bits = address->isV4() ? 32 : 128;
      int length = bits;
      if (slash != absl::string_view::npos &&
          (!absl::SimpleAtoi(part.substr(slash + 1), &length) || length < 0 || length > bits)) {
        return badSpec(part, absl::StrCat("the prefix length must be 0..", bits));
      }
      Network network;
      network.v4 = address->isV4();
      network.length = length;
      std::memcpy(network.prefix.data(), address->data(), bits / 8);
      for (int bit = length; bit < bits; ++bit) {
        network.prefix[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
      }
      out.networks_.push_back(network);
    }
  }
  return out;
}

bool IpNetworks::matches(const Network& network, bool v4, const uint8_t* bytes) {
  if (network.v4 != v4) return false;
  const int whole = network.length / 8;
  if (std::memcmp(network.prefix.data(), bytes, whole) != 0) return false;
  const int rest = network.length % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff00u >> rest);
  return (bytes[whole] & mask) == network.prefix[whole];
}

bool IpNetworks::contains(const sockaddr* addr) const {
  if (networks_.empty()) return false;
  bool v4 = true;
  const uint8_t* bytes = nullptr;
  if (addr->sa_family == AF_INET) {
    bytes = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr);
  } else if (addr->sa_family == AF_INET6) {
    bytes = reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr.s6_addr;
    v4 = std::memcmp(bytes, kV4MappedPrefix, sizeof kV4MappedPrefix) == 0;
    if (v4) bytes += sizeof kV4MappedPrefix;
  } else {
    return false;
  }
  for (const Network& network : networks_) {
    if (matches(network, v4, bytes)) return true;
  }
  return false;
}

}  // namespace shadowrelay::relay
