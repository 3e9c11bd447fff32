# SPDX-License-Identifier: Apache-2.0
"""One fuzz target, built two ways from the same sources.

sr_fuzz_target(name = "address", srcs = ["address_fuzzer.cc"], deps = [...]) makes:
  :address_fuzz_test  a cc_test (gcc, every configuration of ./dev test) that replays
                      tests/fuzz/corpus/address/ (seeds and regression inputs) and truncations
                      of each input through tests/fuzz/replay_main.cc;
  :address_fuzzer     the libFuzzer binary, for `./dev fuzz` and the fuzz smoke run of
                      ./dev test; tagged manual (it only links with clang: --config=fuzz).
"""

def sr_fuzz_target(name, srcs, deps):
    corpus = "corpus/" + name
    native.cc_library(
        name = name + "_fuzz_lib",
        testonly = True,
        srcs = srcs,
        deps = deps + ["//tests/fuzz:fuzz_input"],
        alwayslink = True,
    )
    native.cc_test(
        name = name + "_fuzz_test",
        size = "small",
        args = ["tests/fuzz/" + corpus],
        data = native.glob([corpus + "/*"]),
        deps = [
            ":" + name + "_fuzz_lib",
            "//tests/fuzz:replay_main",
        ],
    )
    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        linkopts = ["-fsanitize=fuzzer"],
        tags = ["manual", "fuzzer"],
        deps = [":" + name + "_fuzz_lib"],
    )
