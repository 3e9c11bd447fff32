// SPDX-License-Identifier: Apache-2.0
// A MetricsExporter with synthetic samples of 2 workers, for the scrape checks (promtool, the
// dashboard's and alerts' metric names):
//   sample_exporter [--listen=127.0.0.1:0]
// Prints "port <n>" once it serves, then runs until its standard input closes.

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "api/metrics/metrics_exporter.h"
#include "tests/api/metrics/sample_data.h"

int main(int argc, char** argv) {
  using shadowrelay::api::metrics::MetricsExporter;
  using shadowrelay::api::metrics::MetricsOptions;
  MetricsOptions options;
  options.listen = "127.0.0.1:0";
  options.workers = 2;
  options.version = "0.0.0-test";
  options.crypto_provider = "openssl";
  options.users_by_state = [] {
    return std::vector<std::pair<std::string, size_t>>{
        {"active", 2}, {"disabled", 0}, {"expired", 0}, {"over_quota", 0}};
  };
  options.user_quotas = [] {
    return std::vector<shadowrelay::api::metrics::UserQuotaSample>{{"alice", 900, 1000}};
  };
  options.user_devices = [] {
    return std::vector<std::pair<std::string, size_t>>{{"alice", 2}, {"bob", 0}};
  };
  options.store = [] {
    shadowrelay::api::metrics::StoreSample s;
    s.requests = {{"range", "ok", 3}, {"txn", "unavailable", 1}};
    s.up = true;
    s.revision = 42;
    s.last_sync_unix_seconds = 1.7e9;
    s.watch_lag_seconds = 0.003;
    return s;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--listen=", 0) == 0) {
      options.listen = arg.substr(std::strlen("--listen="));
    } else {
      std::cerr << "usage: sample_exporter [--listen=host:port]\n";
      return 2;
    }
  }
  auto exporter = MetricsExporter::start(options);
  if (!exporter.ok()) {
    std::cerr << exporter.status() << "\n";
    return 1;
  }
  for (size_t worker = 0; worker < 2; ++worker) {
    (*exporter)->publish(worker, shadowrelay::testing::grownSample(worker, 3));
  }
  std::cout << "port " << (*exporter)->port() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return 0;
}
