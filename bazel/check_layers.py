#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The include graph of our C++ packages, checked against ARCHITECTURE.md's layering.

  bazel/check_layers.py            check; exit 1 naming each edge that breaks a rule
  bazel/check_layers.py --graph    also print the package graph (one "from -> to" per line)

Rules: crypto and dns include nothing of relay or api; relay includes nothing of api except
relay/main.cc (the binary's entry point, which starts api/app's runtime); relay/stats includes
nothing of dns; the packages below relay/ (relay/tcp, relay/udp, ...) form no cycle.
A package is a folder with a BUILD.bazel file; relay/*.cc at the top level is package "relay".
"""
import argparse
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAYERS = ("crypto", "dns", "relay", "api")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def package_of(path):
    """The Bazel package (folder with a BUILD.bazel) a file or an include path belongs to."""
    folder = (ROOT / path).parent
    while folder != ROOT and not (folder / "BUILD.bazel").exists():
        folder = folder.parent
    return folder.relative_to(ROOT).as_posix()


def edges():
    """{(from_package, to_package): [file, ...]} for every include between two of our packages."""
    out = {}
    for layer in LAYERS:
        for source in sorted((ROOT / layer).rglob("*")):
            if source.suffix not in (".h", ".cc"):
                continue
            rel = source.relative_to(ROOT).as_posix()
            for target in INCLUDE.findall(source.read_text(errors="replace")):
                if target.split("/")[0] not in LAYERS or not (ROOT / target).exists():
                    continue  # third-party or generated (.pb.h)
                a, b = package_of(rel), package_of(target)
                if a != b:
                    out.setdefault((a, b), []).append(rel)
    return out


def cycles(graph_edges, prefix):
    """Strongly connected components of more than one package among packages under `prefix`."""
    nodes = sorted({n for e in graph_edges for n in e if n == prefix or n.startswith(prefix + "/")})
    succ = {n: [b for (a, b) in graph_edges if a == n and b in nodes] for n in nodes}
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for n in nodes:
        if n not in index:
            visit(n)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", action="store_true", help="print the package graph")
    args = parser.parse_args()
    graph_edges = edges()
    problems = []
    for (a, b), files in sorted(graph_edges.items()):
        top_a, top_b = a.split("/")[0], b.split("/")[0]
        if top_a in ("crypto", "dns") and top_b in ("relay", "api"):
            problems.append(f"{a} -> {b} ({', '.join(files)}): {top_a} is below relay and api")
        if top_a == "relay" and top_b == "api" and files != ["relay/main.cc"]:
            bad = [f for f in files if f != "relay/main.cc"]
            problems.append(f"{a} -> {b} ({', '.join(bad)}): only relay/main.cc may include api/")
        if a == "relay/stats" and top_b == "dns":
            problems.append(f"{a} -> {b} ({', '.join(files)}): relay/stats knows no dns")
        if top_a == "crypto" and top_b == "dns":
            problems.append(f"{a} -> {b} ({', '.join(files)}): crypto depends on nothing of ours")
    for component in cycles(graph_edges, "relay") + cycles(graph_edges, "api"):
        problems.append("cycle between packages: " + " <-> ".join(component))
    if args.graph:
        for (a, b), files in sorted(graph_edges.items()):
            print(f"{a} -> {b}  ({len(files)} file{'s' if len(files) > 1 else ''})")
    for problem in problems:
        print("layering:", problem, file=sys.stderr)
    print(f"layering: {len(graph_edges)} package edges, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
