// SPDX-License-Identifier: Apache-2.0
#include "relay/net/preauth_limits.h"

#include <cstring>

#include "absl/hash/hash.h"

namespace shadowrelay::relay {

SourceLimiter::Key SourceLimiter::keyOf(const SocketAddress& peer) {
  if (peer.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&peer.storage);
    return {AF_INET, in->sin_addr.s_addr};
  }
  if (peer.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&peer.storage);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {  // a dual-stack listener's IPv4 client
      uint32_t v4 = 0;
      std::memcpy(&v4, in6->sin6_addr.s6_addr + 12, sizeof(v4));
      return {AF_INET, v4};
    }
    uint64_t prefix = 0;  // the /64
    std::memcpy(&prefix, in6->sin6_addr.s6_addr, sizeof(prefix));
    return {AF_INET6, prefix};
  }
  return {0, 0};
}

SourceLimiter::Shard& SourceLimiter::shardOf(const Key& key) {
  return shards_[absl::Hash<Key>{}(key) % kShards];
}

bool SourceLimiter::tryAcquire(const Key& key) {
  if (key.first == 0) return true;
  Shard& shard = shardOf(key);
  absl::MutexLock lock(&shard.mu);
  uint32_t& count = shard.counts[key];
  if (count >= per_source_) return false;
  ++count;
  return true;
}

void SourceLimiter::release(const Key& key) {
  if (key.first == 0) return;
  Shard& shard = shardOf(key);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.counts.find(key);
  if (it == shard.counts.end()) return;
  // Erased at zero: the map holds only sources with a connection in their handshake.
  if (--it->second == 0) shard.counts.erase(it);
}

uint32_t SourceLimiter::countForTest(const SocketAddress& peer) {
  const Key key = keyOf(peer);
  Shard& shard = shardOf(key);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.counts.find(key);
  return it == shard.counts.end() ? 0 : it->second;
}

PreauthSlot& PreauthSlot::operator=(PreauthSlot&& other) noexcept {
  if (this != &other) {
    release();
    gate_ = std::exchange(other.gate_, nullptr);
    source_ = other.source_;
  }
  return *this;
}

void PreauthSlot::release() {
  if (gate_ != nullptr) std::exchange(gate_, nullptr)->giveBack(source_);
}

PreauthSlot PreauthGate::admit(const SocketAddress& peer, Verdict* verdict) {
  if (per_worker_ != 0 && held_ >= per_worker_) {
    *verdict = Verdict::WorkerFull;
    return {};
  }
  const SourceLimiter::Key source = SourceLimiter::keyOf(peer);
  if (sources_ != nullptr && !sources_->tryAcquire(source)) {
    *verdict = Verdict::SourceFull;
    return {};
  }
  ++held_;
  *verdict = Verdict::Admitted;
  return PreauthSlot(this, source);
}

void PreauthGate::giveBack(const SourceLimiter::Key& source) {
  --held_;
  if (sources_ != nullptr) sources_->release(source);
}

}  // namespace shadowrelay::relay
