// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/udp_stats.h"

#include "absl/strings/str_cat.h"

namespace shadowrelay::relay {

void UdpStats::add(const UdpStats& o) {
  packets_in += o.packets_in;
  packets_out += o.packets_out;
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
  dropped_open += o.dropped_open;
  dropped_replay += o.dropped_replay;
  dropped_address += o.dropped_address;
  dropped_refused += o.dropped_refused;
  dropped_over_quota += o.dropped_over_quota;
  dropped_resolve += o.dropped_resolve;
  dropped_send += o.dropped_send;
  dropped_too_big += o.dropped_too_big;
  dropped_fragment += o.dropped_fragment;
  dropped_foreign += o.dropped_foreign;
  associations += o.associations;
  evictions += o.evictions;
  expirations += o.expirations;
}

std::string UdpStats::summary() const {
  return absl::StrCat("packets_in=", packets_in, " packets_out=", packets_out,
                      " bytes_in=", bytes_in, " bytes_out=", bytes_out,
                      " dropped{open=", dropped_open, " replay=", dropped_replay,
                      " address=", dropped_address, " refused=", dropped_refused,
                      " over_quota=", dropped_over_quota,
                      " resolve=", dropped_resolve, " send=", dropped_send,
                      " too_big=", dropped_too_big, " fragment=", dropped_fragment,
                      " foreign=", dropped_foreign, "} associations=", associations,
                      " evictions=", evictions, " expirations=", expirations);
}

}  // namespace shadowrelay::relay
