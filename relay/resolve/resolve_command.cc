// SPDX-License-Identifier: Apache-2.0
#include "relay/resolve/resolve_command.h"

#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "dns/cares_resolver.h"
#include "dns/dns_cache.h"
#include "dns/resolver.h"
#include "relay/dns_adapter/loop_event_driver.h"
#include "relay/event/event_loop.h"

namespace shadowrelay::relay {
namespace {

constexpr char kUsage[] =
    "usage: shadowrelay resolve [-d SERVERS] [--hosts-file FILE] [-6] [--timeout-ms N]\n"
    "                          [--tries N] NAME...\n"
    "\n"
    "Resolves each NAME as the relay would (c-ares, the hosts file first, then DNS), prints\n"
    "the hosts file read, its addresses, then resolves it again and tells whether the answer\n"
    "came from the cache.\n"
    "\n"
    "  -d, --dns SERVERS   name servers, e.g. \"1.1.1.1,127.0.0.1:5353,[::1]:53\"\n"
    "                      (default: those of /etc/resolv.conf)\n"
    "  --hosts-file FILE   read FILE instead of /etc/hosts (as the relay's --hosts-file)\n"
    "  -6                  prefer IPv6 addresses (default: IPv4 first)\n"
    "  --timeout-ms N      first-try timeout per query, 1..60000 (default 1500)\n"
    "  --tries N           tries per server, 1..10 (default 2)\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 if every name resolved, 1 otherwise, 2 on bad usage.\n";

struct Flags {
  dns::ResolverOptions resolver;
  dns::AddressPreference preference = dns::AddressPreference::Ipv4First;
  std::vector<std::string> names;
  bool help = false;
};

/// Parses `args`; on a usage error returns the message.
std::optional<std::string> parseFlags(const std::vector<std::string>& args, Flags& flags) {
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.empty() || arg[0] != '-' || arg == "-") {
      flags.names.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    // "--flag=value" or "--flag value" / "-d value".
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (const size_t eq = arg.find('='); absl::StartsWith(arg, "--") && eq != std::string::npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    auto value = [&]() -> std::optional<std::string> {
      if (inline_value) {
        return inline_value;
      }
      if (i + 1 < args.size()) {
        return args[++i];
      }
      return std::nullopt;
    };
    if (name == "-h" || name == "--help") {
      flags.help = true;
    } else if (name == "-6") {
      flags.preference = dns::AddressPreference::Ipv6First;
    } else if (name == "-d" || name == "--dns") {
      std::optional<std::string> v = value();
      if (!v || v->empty()) {
        return absl::StrFormat("%s needs a server list", name);
      }
      flags.resolver.servers = *v;
    } else if (name == "--hosts-file") {
      std::optional<std::string> v = value();
      if (!v || v->empty()) {
        return absl::StrFormat("%s needs a file", name);
      }
      flags.resolver.hosts_file = *v;
    } else if (name == "--timeout-ms" || name == "--tries") {
      std::optional<std::string> v = value();
      int n = 0;
      if (!v || !absl::SimpleAtoi(*v, &n)) {
        return absl::StrFormat("%s needs a number", name);
      }
      if (name == "--timeout-ms") {
        if (n < 1 || n > 60000) {
          return "--timeout-ms must be in 1..60000";
        }
        flags.resolver.timeout = std::chrono::milliseconds(n);
      } else {
        if (n < 1 || n > 10) {
          return "--tries must be in 1..10";
        }
        flags.resolver.tries = n;
      }
    } else {
      return absl::StrFormat("unknown option %s", arg);
    }
  }
  if (!flags.help && flags.names.empty()) {
    return "no NAME given";
  }
  return std::nullopt;
}

struct Lookup {
  std::optional<dns::ResolveResult> result;
  std::chrono::steady_clock::duration elapsed{};
  dns::ResolveHandle handle;
};

/// Resolves every name at once and runs the loop until all have answered (bounded).
std::vector<Lookup> resolveAll(EventLoop& loop, dns::CaresResolver& resolver,
                               const std::vector<std::string>& names,
                               dns::AddressPreference preference) {
  std::vector<Lookup> lookups(names.size());
  size_t remaining = names.size();
  for (size_t i = 0; i < names.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    Lookup& lookup = lookups[i];
    lookup.handle = resolver.resolve(names[i], preference,
                                     [&lookup, &remaining, start](dns::ResolveResult r) {
                                       lookup.elapsed = std::chrono::steady_clock::now() - start;
                                       lookup.result = std::move(r);
                                       --remaining;
                                     });
  }
  // c-ares fails every lookup by maxLookupTime(); the margin only guards against a bug.
  const auto deadline =
      std::chrono::steady_clock::now() + resolver.maxLookupTime() + std::chrono::seconds(2);
  while (remaining > 0 && std::chrono::steady_clock::now() < deadline) {
    loop.runOnce(std::chrono::milliseconds(100));
  }
  for (Lookup& lookup : lookups) {
    lookup.handle.cancel();  // Only a stalled lookup is still pending; its callback must not run.
  }
  return lookups;
}

std::string describe(const Lookup& lookup) {
  const double ms = std::chrono::duration<double, std::milli>(lookup.elapsed).count();
  if (!lookup.result) {
    return "error: no answer (resolver stalled)";
  }
  const dns::ResolveResult& r = *lookup.result;
  if (!r.ok()) {
    return absl::StrFormat("error: %s (%.1f ms)", dns::toString(r.status), ms);
  }
  return absl::StrFormat(
      "%s (%.1f ms)",
      absl::StrJoin(r.addresses, " ",
                    [](std::string* out, const dns::IpAddress& ip) { out->append(ip.toString()); }),
      ms);
}

}  // namespace

int runResolveCommand(const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err) {
  Flags flags;
  if (std::optional<std::string> error = parseFlags(args, flags)) {
    err << "shadowrelay resolve: " << *error << "\n" << kUsage;
    return 2;
  }
  if (flags.help) {
    out << kUsage;
    return 0;
  }

  EventLoop loop;
  int status = 0;
  {
    LoopEventDriver driver(loop);
    dns::DnsCache cache;
    auto resolver = dns::CaresResolver::create(driver, cache, flags.resolver, nullptr);
    if (!resolver.ok()) {
      err << "shadowrelay resolve: " << resolver.status().message() << "\n" << kUsage;
      return 2;
    }
    out << "hosts file: "
        << (flags.resolver.hosts_file.empty() ? "/etc/hosts" : flags.resolver.hosts_file) << "\n";
    std::vector<Lookup> first = resolveAll(loop, **resolver, flags.names, flags.preference);
    for (size_t i = 0; i < flags.names.size(); ++i) {
      out << flags.names[i] << ": " << describe(first[i]) << "\n";
      if (!first[i].result || !first[i].result->ok()) {
        status = 1;
      }
    }
    std::vector<Lookup> second = resolveAll(loop, **resolver, flags.names, flags.preference);
    for (size_t i = 0; i < flags.names.size(); ++i) {
      const Lookup& again = second[i];
      std::string source = "no answer";
      if (again.result) {
        const dns::ResolveStatus s = again.result->status;
        if (s == dns::ResolveStatus::InvalidName) {
          source = "rejected, no query";
        } else if (again.result->from_cache) {
          source = "from cache";
        } else if (dns::IpAddress::parse(flags.names[i])) {
          source = "literal, no query";
        } else {
          source = "not from cache (queried again)";
        }
      }
      out << flags.names[i] << ": second lookup " << source << "\n";
    }
    (*resolver)->cancelAll();
  }
  return status;
}

int runResolveCommand(int argc, char** argv) {
  std::vector<std::string> args;
  int first = 1;
  if (argc >= 2 && std::string(argv[1]) == "resolve" &&
      !absl::EndsWith(std::string(argv[0]), "resolve")) {
    first = 2;  // Called with main()'s argv: skip the program and the subcommand.
  }
  for (int i = first; i < argc; ++i) {
    args.emplace_back(argv[i]);
  }
  return runResolveCommand(args, std::cout, std::cerr);
}

}  // namespace shadowrelay::relay
