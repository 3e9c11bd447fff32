// SPDX-License-Identifier: Apache-2.0
#include "api/app/server_users.h"

#include "absl/strings/str_cat.h"
#include "crypto/method.h"
#include "relay/log.h"
#include "relay/net/endpoint.h"
#include "relay/udp/udp2022_server.h"
#include "relay/udp/udp_server.h"

namespace shadowrelay::api::app {

ServerUsers::ServerUsers(users::UserRegistry& registry, relay::WorkerPool& pool,
                         std::vector<std::unique_ptr<relay::Worker>>& workers, ListenPlan plan)
    : registry_(registry),
      pool_(pool),
      workers_(workers),
      plan_(std::move(plan)) {}

ServerUsers::~ServerUsers() { stop(); }

void ServerUsers::start() {
  subscription_ =
      registry_.subscribe([this](const relay::UserTablePtr& table) { apply(table); });
}

void ServerUsers::stop() {
  if (subscription_ != 0) registry_.unsubscribe(subscription_);
  subscription_ = 0;
}

relay::UserTablePtr ServerUsers::table() const {
  absl::MutexLock lock(&mu_);
  return table_;
}

std::vector<control::ListenerStatus> ServerUsers::dedicatedListeners() const {
  std::vector<control::ListenerStatus> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [port, user] : open_ports_) {
    for (const relay::SocketAddress& address : plan_.addresses) {
      const std::string host = relay::Endpoint::fromSocketAddress(address).host;
      if (plan_.tcp) out.push_back({host, port, "tcp", user});
      if (plan_.udp) out.push_back({host, port, "udp", user});
    }
  }
  return out;
}

absl::Status ServerUsers::checkPort(uint16_t port) const {
  {
    absl::MutexLock lock(&mu_);
    if (open_ports_.contains(port)) return absl::OkStatus();  // ours already (same user)
  }
  for (relay::SocketAddress address : plan_.addresses) {
    address.setPort(port);
    if (plan_.tcp) {
      relay::ListenOptions options = plan_.options;
      options.reuse_port = false;  // a probe: fails if anybody holds the port
      if (auto fd = relay::listenTcp(address, options); !fd.ok()) return fd.status();
    }
    if (plan_.udp) {
      if (auto fd = relay::bindUdp(address, /*reuse_port=*/false); !fd.ok()) return fd.status();
    }
  }
  return absl::OkStatus();
}

bool ServerUsers::openPort(uint16_t port, bool udp2022) {
  const size_t n = workers_.size();
  // Per worker: its TCP listeners and UDP sockets (SO_REUSEPORT: the kernel spreads the
  // connections and each peer's datagrams over the workers). A 2022 port's UDP is one socket,
  // held by nobody else, on the first worker: its sessions outlive a client's source port,
  // which a SO_REUSEPORT group would spread over workers that do not know them.
  auto tcp = std::make_shared<std::vector<std::vector<relay::Fd>>>(n);
  auto udp = std::make_shared<std::vector<std::vector<relay::Fd>>>(n);
  for (relay::SocketAddress address : plan_.addresses) {
    address.setPort(port);
    for (size_t i = 0; i < n; ++i) {
      if (plan_.tcp) {
        relay::ListenOptions options = plan_.options;
        options.reuse_port = true;
        auto fd = relay::listenTcp(address, options);
        if (!fd.ok()) {
          SR_LOG(Warn, "dedicated port %d: %s", port, fd.status().message());
          return false;
        }
        (*tcp)[i].push_back(std::move(*fd));
      }
      if (plan_.udp && (!udp2022 || i == 0)) {
        auto fd = relay::bindUdp(address, /*reuse_port=*/!udp2022);
        if (!fd.ok()) {
          SR_LOG(Warn, "dedicated port %d: %s", port, fd.status().message());
          return false;
        }
        (*udp)[i].push_back(std::move(*fd));
      }
    }
  }
  pool_.runOnEach([this, port, udp2022, tcp, udp](relay::EventLoop&, size_t i) {
    relay::Worker& worker = *workers_[i];
    for (relay::Fd& fd : (*tcp)[i]) worker.addListener(std::move(fd), port);
    for (relay::Fd& fd : (*udp)[i]) {
      const size_t max = worker.env().udp_max_associations;
      if (udp2022) {
        worker.addUdpPort(std::make_unique<relay::Udp2022Server>(worker, std::move(fd), max, port),
                          port);
      } else {
        worker.addUdpPort(std::make_unique<relay::UdpServer>(worker, std::move(fd), max, port),
                          port);
      }
    }
  });
  return true;
}

void ServerUsers::apply(const relay::UserTablePtr& table) {
  absl::MutexLock lock(&mu_);
  table_ = table;
  // In order on every loop: the table first, then the ports it names.
  pool_.runOnEach([this, table](relay::EventLoop&, size_t i) { workers_[i]->setUsers(table); });
  std::map<uint16_t, std::string> wanted;
  for (uint16_t port : table->dedicatedPorts()) {
    wanted[port] = table->onPort(port).front()->name;
  }
  for (auto it = open_ports_.begin(); it != open_ports_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    const uint16_t port = it->first;
    pool_.runOnEach([this, port](relay::EventLoop&, size_t i) { workers_[i]->closePort(port); });
    SR_LOG(Info, "dedicated port %d closed (user %s)", port, it->second);
    it = open_ports_.erase(it);
  }
  for (const auto& [port, user] : wanted) {
    if (open_ports_.contains(port)) {
      open_ports_[port] = user;
      continue;
    }
    const bool udp2022 =
        table->onPort(port).front()->method->edition == crypto::Edition::Aead2022;
    if (openPort(port, udp2022)) {
      open_ports_[port] = user;
      SR_LOG(Info, "dedicated port %d open for user %s", port, user);
    }
  }
}

}  // namespace shadowrelay::api::app
