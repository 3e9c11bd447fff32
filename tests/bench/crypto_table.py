#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Markdown table: Google Benchmark JSON (ours) next to `openssl speed -evp` (same run)."""
import json
import sys

OPENSSL_NAME = {
    "aes-128-gcm": "aes-128-gcm",
    "aes-192-gcm": "aes-192-gcm",
    "aes-256-gcm": "aes-256-gcm",
    "chacha20-ietf-poly1305": "chacha20-poly1305",
}


def main():
    data = json.load(open(sys.argv[1]))
    speed = {}
    for line in open(sys.argv[2]):
        parts = line.split()
        if len(parts) == 3 and parts[2].endswith("k"):
            speed[(parts[0], int(parts[1]))] = float(parts[2][:-1]) * 1000  # bytes/s
    rows = {}
    extra = []
    for b in data["benchmarks"]:
        if "error_occurred" in b and b["error_occurred"]:
            continue
        if b["name"].startswith("SaltFilter/"):
            extra.append(f"{b['name']}: {b['real_time']:.0f} {b['time_unit']} per salt")
            continue
        op, provider, method_and_size = b["name"].split("/", 2)
        method, size = method_and_size.rsplit("/", 1)
        rows[(method, provider, int(size), op)] = b["bytes_per_second"]
    ctx = data.get("context", {})
    print(f"Machine: {ctx.get('num_cpus')} CPUs @ {ctx.get('mhz_per_cpu')} MHz, "
          f"{ctx.get('host_name', '')}; {ctx.get('date', '')}")
    print()
    print("| method | provider | size | seal GB/s | open GB/s | openssl speed GB/s | seal / speed |")
    print("|---|---|---:|---:|---:|---:|---:|")
    methods = sorted({k[0] for k in rows}, key=lambda m: list(OPENSSL_NAME).index(m)
                     if m in OPENSSL_NAME else 99)
    for method in methods:
        for provider in ("openssl", "boringssl"):
            for size in (16384, 1024):
                seal = rows.get((method, provider, size, "Seal"))
                opn = rows.get((method, provider, size, "Open"))
                if seal is None:
                    continue
                ref = speed.get((OPENSSL_NAME.get(method, ""), size)) if provider == "openssl" else None
                ratio = f"{seal / ref:.2f}" if ref else "n/a"
                ref_s = f"{ref / 1e9:.2f}" if ref else "n/a"
                print(f"| {method} | {provider} | {size} | {seal / 1e9:.2f} | "
                      f"{(opn or 0) / 1e9:.2f} | {ref_s} | {ratio} |")
    if extra:
        print()
        for line in extra:
            print(f"- {line}")


if __name__ == "__main__":
    main()
