# SPDX-License-Identifier: Apache-2.0
"""e2e_test: one Python end-to-end test module, run against our binary by an sh_test.

Bazel 4.2.3's py_test would need a Python toolchain; the system python3 (Debian) is used instead,
and the harness uses only its standard library.
"""

def e2e_test(name, size = "medium", timeout = None, tags = [], data_extra = [], args_extra = [],
             **kwargs):
    native.sh_test(
        name = name,
        size = size,
        timeout = timeout,
        srcs = ["run_e2e.sh"],
        args = [
            "$(location %s.py)" % name,
            "--relay=$(location //relay:shadowrelay)",
        ] + args_extra,
        data = [
            name + ".py",
            "e2e_harness.py",
            "//relay:shadowrelay",
        ] + data_extra,
        tags = ["e2e"] + tags,
        **kwargs
    )
