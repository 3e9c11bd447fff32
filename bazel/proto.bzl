# SPDX-License-Identifier: Apache-2.0
"""C++ code generation for Protobuf + gRPC with the system protoc and grpc_cpp_plugin."""

load("@system_tools//:tools.bzl", "GRPC_CPP_PLUGIN", "PROTOC")

def sr_cc_grpc_library(name, srcs, proto_root = "", deps = [], grpc = True, visibility = None, testonly = False):
    """A cc_library with the messages (and, when grpc = True, the services) of `srcs`.

    `proto_root` is the directory (relative to the workspace) that import paths start from,
    e.g. "api/proto" so that `shadowrelay/v1/users.proto` is the file's name in descriptors.
    Well-known types (google/protobuf/*.proto) come from /usr/include.
    """
    pkg = native.package_name()
    if proto_root and proto_root != pkg:
        fail("proto_root must be empty or the package itself (%s)" % pkg)
    root = proto_root if proto_root else "."
    outs = []
    for src in srcs:
        stem = src[:-len(".proto")]
        outs += [stem + ".pb.h", stem + ".pb.cc"]
        if grpc:
            outs += [stem + ".grpc.pb.h", stem + ".grpc.pb.cc"]

    # protoc writes <out>/<path relative to root>; outs are relative to the package.
    out_root = "$(RULEDIR)" if proto_root else "$(GENDIR)"
    files = " ".join(["$(location %s)" % s for s in srcs])
    cmd = "{protoc} --proto_path={root} --proto_path=/usr/include --cpp_out={out} ".format(
        protoc = PROTOC,
        root = root,
        out = out_root,
    )
    if grpc:
        cmd += "--grpc_out={out} --plugin=protoc-gen-grpc={plugin} ".format(out = out_root, plugin = GRPC_CPP_PLUGIN)
    cmd += files
    native.genrule(
        name = name + "_codegen",
        srcs = srcs,
        outs = outs,
        cmd = cmd,
        testonly = testonly,
        visibility = ["//visibility:private"],
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = ["."] if proto_root else [],
        copts = ["-Wno-unused-parameter"],
        deps = deps + ["@protobuf"] + (["@grpcxx"] if grpc else []),
        visibility = visibility,
        testonly = testonly,
    )
