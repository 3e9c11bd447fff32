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
  for (const auto& [port, open] : open_ports_) {
    for (const relay::SocketAddress& address : plan_.addresses) {
      const std::string host = relay::Endpoint::fromSocketAddress(address).host;
      if (plan_.tcp) out.push_back({host, port, "tcp", open.use.user});
      if (plan_.udp) out.push_back({host, port, "udp", open.use.user});
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

bool ServerUsers::openPort(uint16_t port, const PortUse& use, OpenPort* open) {
  const size_t n = workers_.size();
  const bool udp2022 = use.udp2022;
  const bool plugin = !use.plugin.empty() && plan_.tcp && plan_.addresses.size() == 1;
  // With a plugin, the plugin holds the public TCP port and the workers listen behind it on a
  // loopback port (the first bind picks it, the other workers join it with SO_REUSEPORT).
  auto loopback = relay::parseSocketAddress("127.0.0.1", 0);
  uint16_t behind = 0;
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
        relay::SocketAddress tcp_address = address;
        if (plugin) {
          tcp_address = *loopback;
          tcp_address.setPort(behind);
        }
        auto fd = relay::listenTcp(tcp_address, options);
        if (!fd.ok()) {
          SR_LOG(Warn, "dedicated port %d: %s", port, fd.status().message());
          return false;
        }
        if (plugin && behind == 0) behind = relay::localAddress(fd->get()).port();
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
  open->use = use;
  if (plugin) {
    relay::SocketAddress public_address = plan_.addresses.front();
    public_address.setPort(port);
    relay::SocketAddress relay_listen = *loopback;
    relay_listen.setPort(behind);
    auto created = relay::Sip003Plugin::forDedicatedPort(use.plugin, use.plugin_opts,
                                                         public_address, relay_listen);
    // Not waiting for it to listen: this runs under the registry's change (a control call).
    absl::Status started = created.ok() ? (*created)->start(/*wait=*/false) : created.status();
    if (!started.ok()) {
      SR_LOG(Warn, "dedicated port %d: plugin %s: %s", port, use.plugin, started.message());
    } else {
      open->plugin = *std::move(created);
    }
  }
  return true;
}

void ServerUsers::closePort(uint16_t port, OpenPort& open, bool wait) {
  if (open.plugin) open.plugin->stop();  // SIGTERM, then SIGKILL: no new connections through it
  auto close = [this, port](relay::EventLoop&, size_t i) { workers_[i]->closePort(port); };
  if (wait) {
    pool_.runOnEachAndWait(close);
  } else {
    pool_.runOnEach(close);
  }
  SR_LOG(Info, "dedicated port %d closed (user %s)", port, open.use.user);
}

void ServerUsers::apply(const relay::UserTablePtr& table) {
  absl::MutexLock lock(&mu_);
  table_ = table;
  // In order on every loop: the table first, then the ports it names.
  pool_.runOnEach([this, table](relay::EventLoop&, size_t i) { workers_[i]->setUsers(table); });
  std::map<uint16_t, PortUse> wanted;
  for (uint16_t port : table->dedicatedPorts()) {
    const relay::RelayUser& user = *table->onPort(port).front();
    // Without UDP (-u) a port's listeners are the same for both generations.
    wanted[port] = PortUse{user.name, user.plugin, user.plugin_opts,
                           plan_.udp && user.method->edition == crypto::Edition::Aead2022};
  }
  // Ports no longer wanted close; a port whose plugin or generation changed (a user switching
  // between AEAD-2017 and 2022 methods) closes and opens again.
  for (auto it = open_ports_.begin(); it != open_ports_.end();) {
    const auto want = wanted.find(it->first);
    if (want != wanted.end() && want->second.sameListeners(it->second.use)) {
      it->second.use.user = want->second.user;
      ++it;
      continue;
    }
    // With UDP, its old sockets must be gone before the port is opened again, here or by a
    // later change (a 2022 port's UDP socket binds without SO_REUSEPORT): wait on the workers.
    // This runs under a registry change, on a control thread, never a worker's (stop()
    // unsubscribes before the pool stops).
    closePort(it->first, it->second, /*wait=*/plan_.udp);
    it = open_ports_.erase(it);
  }
  for (const auto& [port, use] : wanted) {
    if (open_ports_.contains(port)) continue;
    OpenPort open;
    if (openPort(port, use, &open)) {
      SR_LOG(Info, "dedicated port %d open for user %s%s", port, use.user,
             open.plugin ? absl::StrCat(" behind plugin ", use.plugin) : "");
      open_ports_.emplace(port, std::move(open));
    }
  }
}

}  // namespace shadowrelay::api::app
