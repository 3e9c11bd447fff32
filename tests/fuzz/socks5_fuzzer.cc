// SPDX-License-Identifier: Apache-2.0
// SOCKS5 (relay/socks5): the greeting, the request and the UDP relay header on the same bytes.
// Each parser keeps the prefix contract (fuzz_input.h checkPrefixes), and what parses says what
// the bytes say:
//  - a greeting's size is 2 + NMETHODS, and it offers "no auth" iff a method byte is 0x00;
//  - a request's raw_address is exactly the address bytes, which writeAddress reproduces, and a
//    reply written for its address parses back (as a request: same layout) to that address;
//  - a UDP header's size is RSV RSV FRAG + the address, its FRAG the third byte.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/address.h"
#include "relay/socks5.h"
#include "tests/fuzz/fuzz_input.h"

namespace shadowrelay::fuzzing {
namespace {

namespace socks5 = relay::socks5;
using socks5::Parse;

struct Greeting {
  socks5::Greeting g;
  bool operator==(const Greeting& o) const {
    return g.offers_no_auth == o.g.offers_no_auth && g.size == o.g.size;
  }
};

struct Request {
  socks5::Request r;
  socks5::Reply reply = socks5::Reply::Succeeded;
  bool operator==(const Request& o) const {
    return r.command == o.r.command && r.address == o.r.address && r.size == o.r.size &&
           std::equal(r.raw_address.begin(), r.raw_address.end(), o.r.raw_address.begin(),
                      o.r.raw_address.end());
  }
};

struct UdpHeader {
  socks5::UdpHeader h;
  bool operator==(const UdpHeader& o) const {
    return h.frag == o.h.frag && h.address == o.h.address && h.size == o.h.size;
  }
};

Parsed<Parse, Greeting> parseGreeting(std::span<const uint8_t> in) {
  Parsed<Parse, Greeting> out{Parse::Invalid};
  out.status = socks5::parseGreeting(in, &out.message.g);
  return out;
}

Parsed<Parse, Request> parseRequest(std::span<const uint8_t> in) {
  Parsed<Parse, Request> out{Parse::Invalid};
  out.status = socks5::parseRequest(in, &out.message.r, &out.message.reply);
  return out;
}

Parsed<Parse, UdpHeader> parseUdpHeader(std::span<const uint8_t> in) {
  Parsed<Parse, UdpHeader> out{Parse::Invalid};
  out.status = socks5::parseUdpHeader(in, &out.message.h);
  return out;
}

void checkGreeting(std::span<const uint8_t> in) {
  checkPrefixes(in, Parse::Ok, Parse::NeedMore, parseGreeting,
                [](const Greeting& m) { return m.g.size; });
  const auto p = parseGreeting(in);
  if (p.status != Parse::Ok) return;
  SR_FUZZ_CHECK(in[0] == socks5::kVersion && p.message.g.size == 2u + in[1]);
  const auto methods = in.subspan(2, in[1]);
  SR_FUZZ_CHECK(p.message.g.offers_no_auth == (std::find(methods.begin(), methods.end(),
                                                         socks5::kMethodNoAuth) != methods.end()));
}

void checkRequest(std::span<const uint8_t> in) {
  checkPrefixes(in, Parse::Ok, Parse::NeedMore, parseRequest,
                [](const Request& m) { return m.r.size; });
  const auto p = parseRequest(in);
  if (p.status == Parse::Invalid) {
    // An unknown address type is the one failure with its own reply (RFC 1928 §6).
    const bool known_type = in.size() > 3 && (in[3] == 1 || in[3] == 3 || in[3] == 4);
    SR_FUZZ_CHECK(p.message.reply == socks5::Reply::GeneralFailure ||
                  (p.message.reply == socks5::Reply::AddressTypeNotSupported && !known_type));
    return;
  }
  if (p.status != Parse::Ok) return;
  const socks5::Request& r = p.message.r;
  SR_FUZZ_CHECK(r.command == in[1] && r.size == 3 + r.address.size());
  SR_FUZZ_CHECK(r.raw_address.data() == in.data() + 3 && r.raw_address.size() == r.address.size());
  std::array<uint8_t, 3 + 1 + 1 + 255 + 2> buf{};
  const size_t n = crypto::writeAddress(r.address, buf);
  SR_FUZZ_CHECK(n == r.raw_address.size() &&
                std::equal(buf.begin(), buf.begin() + n, r.raw_address.begin()));
  // A reply has a request's layout with REP in CMD's place.
  const auto reply = static_cast<socks5::Reply>(in[1] % 9);
  const size_t w = socks5::writeReply(reply, r.address, buf);
  SR_FUZZ_CHECK(w == r.size);
  SR_FUZZ_CHECK(socks5::writeReply(reply, r.address, std::span(buf).first(w - 1)) == 0);
  const auto back = parseRequest(std::span(buf).first(w));
  SR_FUZZ_CHECK(back.status == Parse::Ok && back.message.r.address == r.address &&
                back.message.r.command == static_cast<uint8_t>(reply));
}

void checkUdpHeader(std::span<const uint8_t> in) {
  checkPrefixes(in, Parse::Ok, Parse::NeedMore, parseUdpHeader,
                [](const UdpHeader& m) { return m.h.size; });
  const auto p = parseUdpHeader(in);
  if (p.status != Parse::Ok) return;
  SR_FUZZ_CHECK(in[0] == 0 && in[1] == 0 && p.message.h.frag == in[2]);
  SR_FUZZ_CHECK(p.message.h.size == 3 + p.message.h.address.size());
}

}  // namespace
}  // namespace shadowrelay::fuzzing

SR_FUZZ_TARGET(input) {
  const std::span<const uint8_t> in = input.all();
  checkGreeting(in);
  checkRequest(in);
  checkUdpHeader(in);
}
