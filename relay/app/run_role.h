// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "relay/config.h"

namespace shadowrelay::relay {

inline constexpr char kShadowrelayVersion[] = "0.1.0";

/// `shadowrelay server|local|tunnel [options]`: parses the configuration (exit 2 on a bad one,
/// naming the field), starts the workers and their listeners, and runs until SIGINT/SIGTERM,
/// then drains (stop accepting, let sessions finish up to --drain-timeout) and returns 0.
/// `argv` holds the options after the role word.
int runRole(Role role, int argc, const char* const* argv);

}  // namespace shadowrelay::relay
