// SPDX-License-Identifier: Apache-2.0
// UDP over TCP framing (relay/udp/uot), two ways:
//  - the wire functions on any bytes: the prefix contract (fuzz_input.h checkPrefixes), and
//    what parses is written back byte for byte (the v2 request, connect and non-connect
//    frames; a request's non-zero isConnect byte comes back as 1);
//  - a server UotChannel over a socket pair, fed the bytes in pieces cut where the input says:
//    it delivers exactly the datagrams that parsing the whole stream at once finds, whatever
//    the cuts, and reports the end of the stream.
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "crypto/address.h"
#include "relay/event/event_loop.h"
#include "relay/net/socket.h"
#include "relay/udp/uot.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/testing/loopback.h"

namespace shadowrelay::fuzzing {
namespace {

namespace uot = relay::uot;
using uot::Parse;

struct Request {
  uot::Request r;
  size_t size = 0;
  bool operator==(const Request& o) const {
    return r.connect == o.r.connect && r.destination == o.r.destination && size == o.size;
  }
};

struct Frame {
  uot::Frame f;
  bool operator==(const Frame& o) const {
    return f.address == o.f.address && f.size == o.f.size &&
           std::equal(f.payload.begin(), f.payload.end(), o.f.payload.begin(), o.f.payload.end());
  }
};

Parsed<Parse, Request> parseRequest(std::span<const uint8_t> in) {
  Parsed<Parse, Request> out{Parse::Invalid};
  out.status = uot::parseRequest(in, &out.message.r, &out.message.size);
  return out;
}

Parsed<Parse, Frame> parseFrame(std::span<const uint8_t> in, bool connect) {
  Parsed<Parse, Frame> out{Parse::Invalid};
  out.status = uot::parseFrame(in, connect, &out.message.f);
  return out;
}

void checkWire(std::span<const uint8_t> in) {
  checkPrefixes(in, Parse::Ok, Parse::NeedMore, parseRequest,
                [](const Request& m) { return m.size; });
  if (const auto p = parseRequest(in); p.status == Parse::Ok) {
    uint8_t buf[1 + 1 + 1 + 255 + 2];
    const size_t n = uot::writeRequest(p.message.r, buf);
    SR_FUZZ_CHECK(n == p.message.size && buf[0] == (in[0] != 0 ? 1 : 0));
    SR_FUZZ_CHECK(std::equal(buf + 1, buf + n, in.begin() + 1));
  }
  for (const bool connect : {false, true}) {
    checkPrefixes(
        in, Parse::Ok, Parse::NeedMore,
        [connect](std::span<const uint8_t> s) { return parseFrame(s, connect); },
        [](const Frame& m) { return m.f.size; });
    const auto p = parseFrame(in, connect);
    if (p.status != Parse::Ok) continue;
    std::string out;
    SR_FUZZ_CHECK(uot::appendFrame(connect, p.message.f.address, p.message.f.payload, &out));
    SR_FUZZ_CHECK(out.size() == p.message.f.size &&
                  std::equal(out.begin(), out.end(), in.begin(),
                             [](char a, uint8_t b) { return static_cast<uint8_t>(a) == b; }));
  }
}

using Datagram = std::pair<crypto::SocksAddress, std::vector<uint8_t>>;

/// What a server channel of `version` must deliver for `stream`: the datagrams up to the
/// first incomplete or invalid frame.
std::vector<Datagram> expectedDatagrams(std::span<const uint8_t> stream, int version) {
  std::vector<Datagram> out;
  uot::Request request;
  if (version == 2) {
    size_t used = 0;
    if (uot::parseRequest(stream, &request, &used) != Parse::Ok) return out;
    stream = stream.subspan(used);
  }
  uot::Frame frame;
  while (uot::parseFrame(stream, request.connect, &frame) == Parse::Ok) {
    out.emplace_back(request.connect ? request.destination : frame.address,
                     std::vector<uint8_t>(frame.payload.begin(), frame.payload.end()));
    stream = stream.subspan(frame.size);
  }
  return out;
}

void checkChannel(std::span<const uint8_t> stream, int version, const std::vector<size_t>& cuts) {
  relay::Fd peer;
  relay::Fd ours;
  relay::testing::streamPair(&peer, &ours);
  SR_FUZZ_CHECK(peer.valid() && ours.valid());
  relay::EventLoop loop;
  std::vector<Datagram> got;
  bool closed = false;
  auto channel = relay::UotChannel::server(
      loop, std::move(ours), version,
      [&got](const crypto::SocksAddress& address, std::span<const uint8_t> payload) {
        got.emplace_back(address, std::vector<uint8_t>(payload.begin(), payload.end()));
      },
      [&closed] { closed = true; });
  size_t pos = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    while (pos < end) {  // the input is far smaller than a socket buffer
      const ssize_t n = ::send(peer.get(), stream.data() + pos, end - pos, MSG_NOSIGNAL);
      SR_FUZZ_CHECK(n > 0);
      pos += static_cast<size_t>(n);
    }
    loop.runOnce(std::chrono::milliseconds(0));
  }
  ::shutdown(peer.get(), SHUT_WR);
  for (int i = 0; i < 4 && !closed; ++i) loop.runOnce(std::chrono::milliseconds(0));
  SR_FUZZ_CHECK(closed);
  SR_FUZZ_CHECK(got == expectedDatagrams(stream, version));
}

}  // namespace
}  // namespace shadowrelay::fuzzing

SR_FUZZ_TARGET(in) {
  const uint8_t mode = in.byte();
  if ((mode & 1) == 0) {
    checkWire(in.rest());
    return;
  }
  const int version = (mode & 2) != 0 ? 2 : 1;
  const std::vector<uint16_t> seeds = in.cutSeeds(8);
  const std::span<const uint8_t> stream = in.rest();
  checkChannel(stream, version, cutsFor(seeds, stream.size()));
}
