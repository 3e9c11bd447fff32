# SPDX-License-Identifier: Apache-2.0
"""Repository rules that wrap Debian's system libraries for an offline Bazel build.

Every C++ dependency comes from a Debian -dev package. These rules ask pkg-config (or
the compiler, for the multiarch directory) where the headers and libraries are, so no
`x86_64-linux-gnu` path is written anywhere but in `_multiarch()` below.
"""

def _multiarch(rctx):
    """The Debian multiarch triplet, e.g. x86_64-linux-gnu (asked of the compiler)."""
    cc = rctx.which("gcc") or rctx.which("cc")
    if cc:
        res = rctx.execute([cc, "-print-multiarch"])
        if res.return_code == 0 and res.stdout.strip():
            return res.stdout.strip()
    return "x86_64-linux-gnu"

def _link_include_dirs(rctx, dirs):
    """Symlinks extra include dirs into the repository so `includes` can name them."""
    includes = []
    for i, d in enumerate(dirs):
        name = "include_%d" % i
        rctx.symlink(d, name)
        includes.append(name)
    return includes

def _cc_library_build(name, includes, linkopts, defines, hdrs_glob = False):
    return """package(default_visibility = ["//visibility:public"])

cc_library(
    name = "{name}",
    hdrs = {hdrs},
    includes = {includes},
    linkopts = {linkopts},
    defines = {defines},
)
""".format(
        name = name,
        hdrs = "glob([\"include_*/**/*.h\", \"include_*/**/*.hpp\", \"include_*/**/*.inc\"])" if hdrs_glob else "[]",
        includes = repr(includes),
        linkopts = repr(linkopts),
        defines = repr(defines),
    )

def _pkg_config_library_impl(rctx):
    pkg_config = rctx.which("pkg-config")
    if not pkg_config:
        fail("pkg-config not found: run ./dev, which installs the build dependencies")
    res = rctx.execute([pkg_config, "--cflags", "--libs"] + rctx.attr.modules)
    if res.return_code != 0:
        fail("pkg-config %s failed (is the Debian package %s installed? ./dev installs it): %s" %
             (" ".join(rctx.attr.modules), rctx.attr.debian_package, res.stderr))
    include_dirs = []
    defines = []
    linkopts = []
    seen = {}
    for flag in res.stdout.strip().split(" "):
        flag = flag.strip()
        if not flag or flag in seen:
            continue
        seen[flag] = True
        if flag.startswith("-I"):
            d = flag[2:]
            if d not in ["/usr/include", "/usr/local/include"]:
                include_dirs.append(d)
        elif flag.startswith("-D"):
            defines.append(flag[2:])
        elif flag.startswith("-pthread"):
            linkopts.append(flag)
        else:
            linkopts.append(flag)
    includes = _link_include_dirs(rctx, include_dirs)
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("BUILD.bazel", _cc_library_build(
        rctx.name,
        includes,
        linkopts + rctx.attr.extra_linkopts,
        defines,
        hdrs_glob = len(includes) > 0,
    ))

pkg_config_library = repository_rule(
    implementation = _pkg_config_library_impl,
    attrs = {
        "modules": attr.string_list(mandatory = True),
        "debian_package": attr.string(mandatory = True),
        "extra_linkopts": attr.string_list(),
    },
    local = True,
    doc = "A cc_library named after the repository, from pkg-config --cflags --libs MODULES.",
)

def _plain_system_library_impl(rctx):
    """For libraries without a .pc file: headers in /usr/include, -l flags given."""
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("BUILD.bazel", _cc_library_build(rctx.name, [], rctx.attr.linkopts, []))

plain_system_library = repository_rule(
    implementation = _plain_system_library_impl,
    attrs = {"linkopts": attr.string_list()},
    local = True,
)

def _boringssl_library_impl(rctx):
    """BoringSSL from android-libboringssl-dev: headers in /usr/include/android, the library in
    /usr/lib/<multiarch>/android. Only //crypto/boringssl may depend on it (see ARCHITECTURE.md)."""
    libdir = "/usr/lib/%s/android" % _multiarch(rctx)
    incdir = "/usr/include/android"
    if not rctx.path(libdir + "/libcrypto.so").exists or not rctx.path(incdir + "/openssl/aead.h").exists:
        fail("BoringSSL not found in %s and %s: ./dev installs android-libboringssl-dev" % (libdir, incdir))
    includes = _link_include_dirs(rctx, [incdir])
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("BUILD.bazel", _cc_library_build(
        rctx.name,
        includes,
        [libdir + "/libcrypto.so", "-Wl,-rpath," + libdir],
        [],
        hdrs_glob = True,
    ))

boringssl_library = repository_rule(implementation = _boringssl_library_impl, local = True)

def _blake3_sources_impl(rctx):
    """BLAKE3's official C sources as shipped by librust-blake3-dev, compiled by Bazel."""
    res = rctx.execute(["sh", "-c", "ls -d /usr/share/cargo/registry/blake3-*/c 2>/dev/null | sort -V | tail -1"])
    src = res.stdout.strip()
    if not src:
        fail("BLAKE3 C sources not found under /usr/share/cargo/registry: ./dev installs librust-blake3-dev")
    for f in ["blake3.c", "blake3.h", "blake3_impl.h", "blake3_dispatch.c", "blake3_portable.c",
              "blake3_sse2_x86-64_unix.S", "blake3_sse41_x86-64_unix.S",
              "blake3_avx2_x86-64_unix.S", "blake3_avx512_x86-64_unix.S"]:
        rctx.symlink(src + "/" + f, f)
    arch = rctx.execute(["uname", "-m"]).stdout.strip()
    if arch in ["amd64", "x86_64"]:
        simd_srcs = ["blake3_sse2_x86-64_unix.S", "blake3_sse41_x86-64_unix.S",
                     "blake3_avx2_x86-64_unix.S", "blake3_avx512_x86-64_unix.S"]
        defines = []
    else:
        simd_srcs = []
        defines = ["BLAKE3_NO_SSE2", "BLAKE3_NO_SSE41", "BLAKE3_NO_AVX2", "BLAKE3_NO_AVX512", "BLAKE3_USE_NEON=0"]
    rctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % rctx.name)
    rctx.file("BUILD.bazel", """package(default_visibility = ["//visibility:public"])

cc_library(
    name = "{name}",
    srcs = ["blake3.c", "blake3_dispatch.c", "blake3_portable.c", "blake3_impl.h"] + {simd},
    hdrs = ["blake3.h"],
    includes = ["."],
    local_defines = {defines},
    copts = ["-w"],
)
""".format(name = rctx.name, simd = repr(simd_srcs), defines = repr(defines)))

blake3_sources = repository_rule(implementation = _blake3_sources_impl, local = True)

def _system_tool_impl(rctx):
    """Exports absolute paths of host tools (protoc, grpc_cpp_plugin) as a .bzl constant."""
    lines = []
    for name in rctx.attr.tools:
        path = rctx.which(name)
        if not path:
            fail("%s not found: ./dev installs protobuf-compiler and protobuf-compiler-grpc" % name)
        lines.append("%s = \"%s\"" % (name.upper().replace("-", "_"), path))
    rctx.file("WORKSPACE", "")
    rctx.file("BUILD.bazel", "exports_files([\"tools.bzl\"])\n")
    rctx.file("tools.bzl", "\n".join(lines) + "\n")

system_tools = repository_rule(
    implementation = _system_tool_impl,
    attrs = {"tools": attr.string_list()},
    local = True,
)
