// SPDX-License-Identifier: Apache-2.0
// The Shadowsocks / SOCKS5 address header (crypto/address): parseAddress on any bytes, with
//  - the prefix contract (tests/fuzz/fuzz_input.h checkPrefixes);
//  - writeAddress(parseAddress(x)) == the bytes it took, and nothing fits a smaller buffer;
//  - toString() of what parsed (the form logs and metrics use) is well formed.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "crypto/address.h"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {
namespace {

using crypto::AddressParse;
using crypto::SocksAddress;

struct Address {
  SocksAddress address;
  size_t size = 0;
  bool operator==(const Address&) const = default;
};

Parsed<AddressParse, Address> parse(std::span<const uint8_t> in) {
  Parsed<AddressParse, Address> out{AddressParse::Invalid};
  out.status = crypto::parseAddress(in, &out.message.address, &out.message.size);
  return out;
}

}  // namespace
}  // namespace shadowrelay::fuzzing

SR_FUZZ_TARGET(input) {
  const std::span<const uint8_t> in = input.all();
  checkPrefixes(in, AddressParse::Ok, AddressParse::NeedMore, parse,
                [](const Address& a) { return a.size; });
  const auto parsed = parse(in);
  if (parsed.status != AddressParse::Ok) return;
  const SocksAddress& a = parsed.message.address;
  SR_FUZZ_CHECK(a.size() == parsed.message.size);
  std::array<uint8_t, 1 + 1 + 255 + 2> buf{};
  const size_t n = shadowrelay::crypto::writeAddress(a, buf);
  SR_FUZZ_CHECK(n == parsed.message.size);
  SR_FUZZ_CHECK(std::equal(buf.begin(), buf.begin() + n, in.begin()));
  SR_FUZZ_CHECK(shadowrelay::crypto::writeAddress(a, std::span(buf).first(n - 1)) == 0);
  const std::string text = a.toString();
  SR_FUZZ_CHECK(text.ends_with(":" + std::to_string(a.port)));
  if (a.type == SocksAddress::Type::IPv6) SR_FUZZ_CHECK(text.starts_with("["));
}
