// SPDX-License-Identifier: Apache-2.0
#include "relay/upstream/upstream_list.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/key_derivation.h"
#include "crypto/method.h"
#include "crypto/providers.h"
#include "relay/log.h"
#include "relay/net/endpoint.h"

namespace shadowrelay::relay {

namespace {

/// The method and key a client speaks to `server` with.
absl::StatusOr<Credentials> credentialsFor(const ServerEntry& server,
                                           const crypto::CryptoProviders& providers) {
  auto method = crypto::findAnyMethod(server.method);
  if (!method.ok()) return method.status();
  Credentials creds;
  creds.method = *method;
  creds.provider = &providers.providerFor(**method);
  if ((*method)->edition == crypto::Edition::Aead2022) {
    // The PSK, or iPSK_1:...:uPSK: one identity header per iPSK (SIP023).
    auto keys = crypto::parsePskList(server.password.empty() ? server.key : server.password,
                                     **method);
    if (!keys.ok()) return keys.status();
    creds.master = keys->back();
    if (keys->size() > 1) creds.key_chain = *std::move(keys);
  } else {
    auto master = crypto::masterKeyFor(**method, server.password, server.key);
    if (!master.ok()) return master.status();
    creds.master = std::move(*master);
  }
  return creds;
}

}  // namespace

absl::StatusOr<std::vector<Upstream>> makeUpstreams(const Config& config,
                                                    const crypto::CryptoProviders& providers) {
  std::vector<Upstream> out;
  const std::vector<ServerEntry> servers = clientServers(config);
  for (size_t i = 0; i < servers.size(); ++i) {
    const ServerEntry& server = servers[i];
    // The option that holds the secret: the top-level key, or the entry's.
    const std::string field = i < config.server_hosts.size()
                                  ? std::string("key")
                                  : absl::StrCat("servers[", i - config.server_hosts.size(),
                                                 server.password.empty() ? "].key" : "].password");
    Upstream upstream;
    upstream.label = serverLabel(server);
    upstream.endpoint = Endpoint{server.host, server.port};
    upstream.address = upstream.endpoint.socksAddress();
    auto creds = credentialsFor(server, providers);
    if (!creds.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", creds.status().message()));
    }
    upstream.credentials = *std::move(creds);
    out.push_back(std::move(upstream));
  }
  return out;
}

absl::Status resolveUpstreams(std::vector<Upstream>& upstreams, bool need_resolved) {
  for (Upstream& upstream : upstreams) {
    auto resolved = resolveAtStartup({upstream.endpoint.host}, upstream.endpoint.port);
    if (resolved.ok() && !resolved->empty()) {
      upstream.resolved = resolved->front();
      continue;
    }
    const std::string why =
        resolved.ok() ? "no address" : std::string(resolved.status().message());
    if (need_resolved) {
      return absl::InvalidArgumentError(absl::StrCat("server ", upstream.label, ": ", why));
    }
    SR_LOG(Warn, "server %s: %s (not probed; its sessions resolve it)", upstream.label, why);
  }
  return absl::OkStatus();
}

}  // namespace shadowrelay::relay
