// SPDX-License-Identifier: Apache-2.0
#include "relay/users/user_matcher.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "crypto/aead_stream.h"

namespace shadowrelay::relay {

void UserMatcher::setTable(UserTablePtr table) {
  absl::flat_hash_map<uint16_t, std::vector<RelayUserPtr>> order;
  if (table != nullptr) {
    std::vector<uint16_t> ports = table->dedicatedPorts();
    ports.push_back(0);
    for (uint16_t port : ports) {
      const std::span<const RelayUserPtr> users = table->onPort(port);
      std::vector<RelayUserPtr>& list = order[port];
      list.reserve(users.size());
      absl::flat_hash_set<absl::string_view> placed;
      // Keep the recency order of users that are still on this port ...
      if (auto old = order_.find(port); old != order_.end()) {
        for (const RelayUserPtr& previous : old->second) {
          RelayUserPtr now = table->findShared(previous->name);
          if (now == nullptr || !now->enabled || now->port != port) continue;
          placed.insert(now->name);
          list.push_back(std::move(now));
        }
      }
      // ... and add the others after them.
      for (const RelayUserPtr& user : users) {
        if (!placed.contains(user->name)) list.push_back(user);
      }
    }
  }
  order_ = std::move(order);
  table_ = std::move(table);
}

std::span<const RelayUserPtr> UserMatcher::candidates(uint16_t port) const {
  if (table_ == nullptr) return {};
  return table_->onPort(port);
}

UserMatcher::Outcome UserMatcher::matchStream(uint16_t port, absl::string_view client_ip,
                                              std::span<const uint8_t> start, RelayUserPtr* user,
                                              StreamTrials* tried) {
  const uint64_t generation = table_ != nullptr ? table_->generation() : 0;
  size_t failed_below = 0;  // users whose probe fits in this many bytes failed before
  if (tried != nullptr && tried->generation == generation) failed_below = tried->tried_bytes;
  bool need_more = false;
  uint64_t passed_over = 0;  // matchIn counts every candidate; these were not tried
  *user = matchIn(port, client_ip, [&](const RelayUser& candidate) {
    const size_t probe = crypto::streamProbeSize(*candidate.method);
    if (start.size() < probe) need_more = true;
    if (start.size() < probe || probe <= failed_below) {
      ++passed_over;
      return false;
    }
    return crypto::streamOpensWith(*candidate.method, *candidate.provider, candidate.key.bytes(),
                                   start);
  });
  trials_ -= passed_over;
  if (*user != nullptr) return Outcome::Matched;
  if (tried != nullptr) *tried = {generation, std::max(failed_below, start.size())};
  return need_more ? Outcome::NeedMore : Outcome::NoMatch;
}

RelayUserPtr UserMatcher::match(uint16_t port, absl::string_view client_ip,
                                absl::FunctionRef<bool(const RelayUser&)> opens) {
  return matchIn(port, client_ip, opens);
}

RelayUserPtr UserMatcher::matchIn(uint16_t port, absl::string_view client_ip,
                                  absl::FunctionRef<bool(const RelayUser&)> opens) {
  auto it = order_.find(port);
  if (it == order_.end()) return nullptr;
  std::vector<RelayUserPtr>& list = it->second;
  // The user this client IP matched last, if it is still on this port.
  const RelayUser* hinted = nullptr;
  if (auto hint = last_by_ip_.find(client_ip); hint != last_by_ip_.end()) {
    const RelayUser* user = table_->find(hint->second);
    if (user != nullptr && user->enabled && user->port == port) {
      hinted = user;
      ++trials_;
      if (opens(*user)) return table_->findShared(user->name);
    }
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].get() == hinted) continue;
    ++trials_;
    if (!opens(*list[i])) continue;
    return promote(list, i, client_ip);
  }
  return nullptr;
}

RelayUserPtr UserMatcher::promote(std::vector<RelayUserPtr>& list, size_t i,
                                  absl::string_view client_ip) {
  // Most recently matched first: move it to the front.
  std::rotate(list.begin(), list.begin() + static_cast<ptrdiff_t>(i),
              list.begin() + static_cast<ptrdiff_t>(i) + 1);
  if (last_by_ip_.size() >= kMaxClientHints) last_by_ip_.clear();
  last_by_ip_.insert_or_assign(std::string(client_ip), list.front()->name);
  return list.front();
}

RelayUserPtr UserMatcher::hintFor(uint16_t port, absl::string_view client_ip) const {
  if (table_ == nullptr) return nullptr;
  auto hint = last_by_ip_.find(client_ip);
  if (hint == last_by_ip_.end()) return nullptr;
  RelayUserPtr user = table_->findShared(hint->second);
  if (user == nullptr || !user->enabled || user->port != port) return nullptr;
  return user;
}

RelayUserPtr UserMatcher::matchWindow(uint16_t port, absl::string_view client_ip, size_t first,
                                      size_t max_trials, const RelayUser* skip,
                                      absl::FunctionRef<bool(const RelayUser&)> opens,
                                      size_t* tried, size_t* next) {
  *tried = 0;
  *next = 0;
  auto it = order_.find(port);
  if (it == order_.end() || it->second.empty()) return nullptr;
  std::vector<RelayUserPtr>& list = it->second;
  const size_t n = list.size();
  const size_t start = first % n;
  const size_t span = std::min(max_trials, n);
  *next = (start + span) % n;
  for (size_t k = 0; k < span; ++k) {
    const size_t i = (start + k) % n;
    if (list[i].get() == skip) continue;
    ++trials_;
    ++*tried;
    if (!opens(*list[i])) continue;
    *next = 0;
    return promote(list, i, client_ip);
  }
  return nullptr;
}

}  // namespace shadowrelay::relay
