# SPDX-License-Identifier: Apache-2.0
"""A second local C++ toolchain, on Debian's clang, for the fuzz configuration (.bazelrc).

The default toolchain (@local_config_cc) is gcc. libFuzzer only exists in clang, so
`--config=fuzz` selects this one with --crosstool_top. It is Bazel's own autoconfiguration
(the same code that makes @local_config_cc) with the compiler overridden, so both toolchains
live side by side in one output base: switching configurations refetches nothing, and the
sources and BUILD files stay the one description of every target. Fetched only when a build
asks for it, so a machine without clang builds everything else.
"""

load("@bazel_tools//tools/cpp:cc_configure.bzl", "cc_autoconf_impl")

def _clang_toolchain_impl(rctx):
    clang = rctx.which("clang")
    if not clang:
        fail("clang not found: `bazel/install_deps.sh test` installs clang and libclang-rt-14-dev " +
             "(libFuzzer and the sanitizer runtimes)")
    cc_autoconf_impl(rctx, overriden_tools = {"gcc": str(clang)})

clang_toolchain = repository_rule(
    implementation = _clang_toolchain_impl,
    local = True,
    configure = True,
)
