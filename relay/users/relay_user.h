// SPDX-License-Identifier: Apache-2.0
#pragma once
// One user as the data plane reads it (an entry of a UserTable). Sessions and UDP associations
// hold their user by shared pointer, so a table can be replaced while they run.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "crypto/aead.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "relay/users/device_tracker.h"
#include "relay/users/rate_bucket.h"

namespace shadowrelay::relay {

/// What all workers count together for one user name; carried from table to table.
struct UserLive {
  /// TCP sessions open now, on every worker (changed at session start and close only).
  std::atomic<uint32_t> tcp_sessions{0};
  /// With an etcd store: the TCP sessions the other replicas had open at their last sync
  /// (issue 19 §2; set by the store's thread, read at session start against max_connections).
  std::atomic<uint32_t> remote_tcp_sessions{0};
  /// The client networks that used the user lately (max_devices, User.devices), with the other
  /// replicas' by id.
  std::shared_ptr<DeviceTracker> devices = std::make_shared<DeviceTracker>();
  /// bytes_per_second as the newest table has it (0: unlimited; UserTable sets it), so that
  /// open sessions follow an UpdateUser, and what each direction drew from it (kRateUp: client
  /// to target, kRateDown: target to client).
  std::atomic<uint64_t> bytes_per_second{0};
  std::array<RateBucket, 2> rate;

  /// UDP: may a datagram of `n` bytes go in direction `dir` now? Draws it if so (over the rate
  /// it is dropped, not delayed).
  bool admitsDatagram(size_t dir, size_t n, int64_t now);
};

inline constexpr size_t kRateUp = 0;
inline constexpr size_t kRateDown = 1;

struct RelayUser {
  std::string name;
  const crypto::MethodInfo* method = nullptr;
  const crypto::AeadProvider* provider = nullptr;
  crypto::MasterKey key;  // 2017: the master key; 2022: the PSK (with identity headers: uPSK)
  uint16_t port = 0;      // a dedicated port; 0: the server's shared port
  bool enabled = true;
  bool quota_exceeded = false;   // data quota reached: identified, then refused
  bool expired = false;          // past its expiry: identified, then refused (as "expired")
  uint32_t max_connections = 0;  // concurrent TCP sessions; 0: unlimited
  uint32_t max_devices = 0;      // distinct client networks within device_window; 0: unlimited
  std::chrono::seconds device_window{600};  // --device-window: how long a device still counts
  uint64_t bytes_per_second = 0;  // each direction, all sessions together; 0: unlimited
  std::string plugin;            // a dedicated port's SIP003 plugin (api/app runs it); "": none
  std::string plugin_opts;
  std::shared_ptr<UserLive> live = std::make_shared<UserLive>();

  /// Same method and key: a live session of `other` may continue under this user.
  bool sameKey(const RelayUser& other) const;
  /// May a new session start (identified users only), `others` sessions of the user being open
  /// on this server besides it? False over quota or at max_connections, which counts the other
  /// replicas' sessions too (an expired user is refused before, counted apart).
  bool admitsNewSession(uint32_t others) const;
  /// A session or association of the user from device `key` (sourceKey()) starts: a lease that
  /// counts it until destroyed (held() false when, without a limit, it is not tracked), or
  /// nullopt when the device is refused: a new one beyond max_devices.
  std::optional<DeviceLease> admitDevice(const std::string& key) const;
};

using RelayUserPtr = std::shared_ptr<const RelayUser>;

}  // namespace shadowrelay::relay
