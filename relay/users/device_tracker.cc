// SPDX-License-Identifier: Apache-2.0
#include "relay/users/device_tracker.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace shadowrelay::relay {

DeviceTracker::Admission DeviceTracker::acquire(const std::string& key, uint32_t max_devices,
                                                Clock::duration window) {
  const Clock::time_point now = now_();
  absl::MutexLock lock(&mu_);
  if (auto it = entries_.find(key); it != entries_.end()) {
    // A device seen before: it keeps working while it counts, and one past the window starts
    // over as if new (below), so that its place may have been taken meanwhile.
    if (counts(it->second, now, window)) {
      ++it->second.active;
      it->second.last_seen = now;
      return Admission::Counted;
    }
    entries_.erase(it);
  }
  // A new device (rare next to sessions of known ones): the walk over at most the capacity is
  // paid here only.
  expireLocked(now, window);
  // Its id only when other replicas count devices of the user (an etcd store).
  std::string id = remote_.empty() || ids_ == nullptr ? std::string() : ids_->id(key);
  if (max_devices != 0) {
    const bool elsewhere = !id.empty() && remote_.contains(id);
    if (!elsewhere && entries_.size() + remoteOnlyCountLocked(now, window) >= max_devices) {
      return Admission::Refused;
    }
  }
  const size_t capacity = std::max<size_t>(max_devices, kMinCapacity);
  if (entries_.size() >= capacity) {
    // Without a limit: the inactive device seen longest ago makes room.
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.active == 0 &&
          (oldest == entries_.end() || it->second.last_seen < oldest->second.last_seen)) {
        oldest = it;
      }
    }
    if (oldest == entries_.end()) return Admission::Uncounted;
    entries_.erase(oldest);
  }
  entries_.emplace(key, Entry{1, now, std::move(id)});
  return Admission::Counted;
}

void DeviceTracker::release(const std::string& key) {
  const Clock::time_point now = now_();
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.active == 0) return;
  --it->second.active;
  it->second.last_seen = now;
}

void DeviceTracker::expireLocked(Clock::time_point now, Clock::duration window) {
  absl::erase_if(entries_, [&](const auto& entry) { return !counts(entry.second, now, window); });
}

std::vector<DeviceTracker::Device> DeviceTracker::devices(Clock::duration window) const {
  const Clock::time_point now = now_();
  std::vector<Device> out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, entry] : entries_) {
      if (!counts(entry, now, window)) continue;
      Device device;
      device.key = key;
      device.active = entry.active > 0;
      device.since_seen = device.active ? Clock::duration(0) : now - entry.last_seen;
      out.push_back(std::move(device));
    }
  }
  std::sort(out.begin(), out.end(), [](const Device& a, const Device& b) {
    if (a.active != b.active) return a.active;
    if (a.since_seen != b.since_seen) return a.since_seen < b.since_seen;
    return a.key < b.key;
  });
  return out;
}

size_t DeviceTracker::count(Clock::duration window) const {
  const Clock::time_point now = now_();
  absl::MutexLock lock(&mu_);
  return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(), [&](const auto& e) {
    return counts(e.second, now, window);
  }));
}

void DeviceTracker::useIdsLocked(const DeviceIdsPtr& ids) {
  if (ids == ids_) return;
  ids_ = ids;
  for (auto& [key, entry] : entries_) entry.id.clear();
}

const std::string& DeviceTracker::idLocked(const std::string& key, Entry& entry) {
  if (entry.id.empty() && ids_ != nullptr) entry.id = ids_->id(key);
  return entry.id;
}

size_t DeviceTracker::remoteOnlyCountLocked(Clock::time_point now, Clock::duration window) {
  if (remote_.empty()) return 0;
  size_t both = 0;
  for (auto& [key, entry] : entries_) {
    if (counts(entry, now, window) && remote_.contains(idLocked(key, entry))) ++both;
  }
  return remote_.size() - both;
}

void DeviceTracker::setRemote(DeviceIdsPtr ids, absl::flat_hash_set<std::string> remote) {
  if (ids == nullptr) remote.clear();  // nothing to compare them with
  absl::MutexLock lock(&mu_);
  useIdsLocked(ids);
  remote_ = std::move(remote);
}

std::vector<std::string> DeviceTracker::ids(const DeviceIdsPtr& ids, Clock::duration window) {
  const Clock::time_point now = now_();
  std::vector<std::string> out;
  {
    absl::MutexLock lock(&mu_);
    useIdsLocked(ids);
    for (auto& [key, entry] : entries_) {
      if (counts(entry, now, window)) out.push_back(idLocked(key, entry));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> DeviceTracker::remoteOnly(Clock::duration window) {
  const Clock::time_point now = now_();
  std::vector<std::string> out;
  {
    absl::MutexLock lock(&mu_);
    if (remote_.empty()) return out;
    absl::flat_hash_set<std::string> local;
    for (auto& [key, entry] : entries_) {
      if (counts(entry, now, window)) local.insert(idLocked(key, entry));
    }
    for (const std::string& id : remote_) {
      if (!local.contains(id)) out.push_back(id);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string DeviceTracker::keyText(const std::string& key) {
  char text[INET6_ADDRSTRLEN] = {};
  if (key.size() == 4) {
    in_addr v4;
    std::memcpy(&v4, key.data(), 4);
    return inet_ntop(AF_INET, &v4, text, sizeof(text)) != nullptr ? std::string(text) : "";
  }
  if (key.size() == 8) {
    in6_addr v6{};
    std::memcpy(&v6, key.data(), 8);
    if (inet_ntop(AF_INET6, &v6, text, sizeof(text)) == nullptr) return "";
    return absl::StrCat(text, "/64");
  }
  return "";
}

}  // namespace shadowrelay::relay
