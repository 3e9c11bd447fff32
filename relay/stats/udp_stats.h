// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>

namespace shadowrelay::relay {

struct UdpStats {
  uint64_t packets_in = 0;         // from peers, opened and forwarded
  uint64_t packets_out = 0;        // back to peers
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t dropped_open = 0;       // too short or did not open
  uint64_t dropped_replay = 0;
  uint64_t dropped_address = 0;
  uint64_t dropped_refused = 0;    // private target
  uint64_t dropped_over_quota = 0; // the user is over its data quota
  uint64_t dropped_resolve = 0;
  uint64_t dropped_send = 0;       // a send failed (far side or peer)
  uint64_t dropped_too_big = 0;    // larger than a UDP datagram can carry
  uint64_t dropped_fragment = 0;   // SOCKS5: FRAG != 0 (fragments are not reassembled)
  uint64_t dropped_foreign = 0;    // SOCKS5: not from the associating client's IP
  uint64_t associations = 0;       // created
  uint64_t evictions = 0;
  uint64_t expirations = 0;

  void add(const UdpStats& other);
  std::string summary() const;
};

}  // namespace shadowrelay::relay
