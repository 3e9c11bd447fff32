// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace shadowrelay::relay {

/// `shadowrelay resolve [-d SERVERS] [-6] [--timeout-ms N] [--tries N] NAME...`
/// Resolves every NAME concurrently with dns::CaresResolver on a relay::EventLoop, prints each
/// name's addresses, then resolves them again and prints whether the answer came from the cache.
/// Returns 0 when every name resolved, 1 otherwise, 2 on bad usage (with a usage message).
/// `argv[0]` is skipped (the subcommand "resolve", or the program name when argv[1] is
/// "resolve"). Runs on the calling thread; bounded by the lookup timeouts.
int runResolveCommand(int argc, char** argv);

/// The same with the arguments after "resolve", writing results to `out` and errors to `err`.
int runResolveCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace shadowrelay::relay
