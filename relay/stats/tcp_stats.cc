// SPDX-License-Identifier: Apache-2.0
#include "relay/stats/tcp_stats.h"

#include "absl/strings/str_cat.h"

namespace shadowrelay::relay {

const char* closeReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::Done:
      return "done";
    case CloseReason::IdleTimeout:
      return "idle_timeout";
    case CloseReason::HandshakeTimeout:
      return "handshake_timeout";
    case CloseReason::ClientClosed:
      return "client_closed";
    case CloseReason::AuthFailed:
      return "auth_failed";
    case CloseReason::ReplayedSalt:
      return "replayed_salt";
    case CloseReason::BadAddress:
      return "bad_address";
    case CloseReason::TargetRefused:
      return "target_refused";
    case CloseReason::ResolveFailed:
      return "resolve_failed";
    case CloseReason::ConnectFailed:
      return "connect_failed";
    case CloseReason::ConnectTimeout:
      return "connect_timeout";
    case CloseReason::BadStream:
      return "bad_stream";
    case CloseReason::SocksError:
      return "socks_error";
    case CloseReason::IoError:
      return "io_error";
    case CloseReason::Shutdown:
      return "shutdown";
    case CloseReason::OverLimit:
      return "over_limit";
    case CloseReason::Revoked:
      return "revoked";
    case CloseReason::StaleTimestamp:
      return "stale_timestamp";
    case CloseReason::kCount:
      break;
  }
  return "unknown";
}

const char* closeStatusLabel(CloseReason reason) {
  switch (reason) {
    case CloseReason::Done:
    case CloseReason::ClientClosed:  // the client left before its request was complete
    case CloseReason::Shutdown:
    case CloseReason::Revoked:  // an operator's decision, not a failure
      return "ok";
    case CloseReason::AuthFailed:
    case CloseReason::BadAddress:  // a probe, as far as the server can tell
      return "auth_failed";
    case CloseReason::ReplayedSalt:
      return "replay";
    case CloseReason::StaleTimestamp:  // 2022: an old recording played again, or a wrong clock
      return "stale_timestamp";
    case CloseReason::HandshakeTimeout:
      return "timeout_handshake";
    case CloseReason::IdleTimeout:
      return "timeout_idle";
    case CloseReason::ConnectTimeout:
      return "timeout_connect";
    case CloseReason::ResolveFailed:
      return "dns_failed";
    case CloseReason::ConnectFailed:
      return "target_refused";
    case CloseReason::TargetRefused:
      return "target_private";
    case CloseReason::BadStream:
    case CloseReason::SocksError:
    case CloseReason::IoError:
    case CloseReason::OverLimit:  // also counted as refused_over_limit
    case CloseReason::kCount:
      break;
  }
  return "error";
}

SR_STATS_DEFINE_FIELDS(TcpStats, SR_TCP_STATS)

void TcpStats::add(const TcpStats& o) {
  addFields(*this, o);
  addEach(closed, o.closed);
}

std::string TcpStats::summary() const {
  std::string out = summarizeFields(*this);
  out += " closed{";
  bool first = true;
  for (size_t i = 0; i < closed.size(); ++i) {
    if (closed[i] == 0) continue;
    absl::StrAppend(&out, first ? "" : " ", closeReasonName(static_cast<CloseReason>(i)), "=",
                    closed[i]);
    first = false;
  }
  out += "}";
  return out;
}

}  // namespace shadowrelay::relay
