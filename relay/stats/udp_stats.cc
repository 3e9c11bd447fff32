// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/udp_stats.h"

namespace shadowrelay::relay {

SR_STATS_DEFINE_FIELDS(UdpStats, SR_UDP_STATS)

void UdpStats::add(const UdpStats& o) { addFields(*this, o); }

std::string UdpStats::summary() const { return summarizeFields(*this); }

}  // namespace shadowrelay::relay
