// SPDX-License-Identifier: Apache-2.0
#include "relay/tcp/gost_udp_framing.h"

#include <algorithm>

namespace shadowrelay::relay {

GostUdpFraming::Feed GostUdpFraming::feed(
    std::span<const uint8_t> bytes,
    absl::FunctionRef<void(const socks5::UdpFrame&, std::span<const uint8_t> frame)> on_frame) {
  if (malformed_) return Feed::Malformed;
  // Whole frames are taken from `bytes` where they lie; only a partial one is copied (into
  // in_), and completed there by the next bytes.
  std::span<const uint8_t> rest = bytes;
  socks5::UdpFrame frame;
  while (!rest.empty() || !in_.empty()) {
    std::span<const uint8_t> view = rest;
    if (!in_.empty()) {
      // Complete the parked frame first. No frame is longer than kMaxFrame, so with that many
      // bytes it parses (Ok or Invalid): NeedMore means all of `rest` went in.
      const size_t before = in_.size();
      in_.append(rest.data(), std::min(rest.size(), kMaxFrame - before));
      view = in_.span();
      const socks5::Parse parsed = socks5::parseUdpFrame(view, &frame);
      if (parsed == socks5::Parse::Invalid) {
        malformed_ = true;
        return Feed::Malformed;
      }
      if (parsed == socks5::Parse::NeedMore) return Feed::Ok;  // all of rest is in in_
      on_frame(frame, view.first(frame.size()));
      // The frame took (frame.size() - before) bytes of rest; the remainder is parsed in place.
      rest = rest.subspan(frame.size() - before);
      in_.release();
      continue;
    }
    switch (socks5::parseUdpFrame(view, &frame)) {
      case socks5::Parse::Invalid:
        malformed_ = true;
        return Feed::Malformed;
      case socks5::Parse::NeedMore:
        in_.append(rest.data(), rest.size());
        return Feed::Ok;
      case socks5::Parse::Ok:
        on_frame(frame, view.first(frame.size()));
        rest = rest.subspan(frame.size());
        break;
    }
  }
  return Feed::Ok;
}

bool GostUdpFraming::queue(std::span<const uint8_t> frame) {
  if (out_.size() + frame.size() > kMaxQueuedReplies) return false;
  out_.append(frame.data(), frame.size());
  return true;
}

}  // namespace shadowrelay::relay
