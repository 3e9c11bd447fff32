#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages shadowrelay needs, when missing. Shared by ./dev and
# deploy/docker/Dockerfile so that CI proves the image's install step.
#   bazel/install_deps.sh [build|test|bench|all]...   (default: build)
# Idempotent and quiet when everything is present; uses sudo only when not root.
set -euo pipefail

BUILD_PKGS=(
  bazel-bootstrap g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libc-ares-dev liburing-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev android-libboringssl-dev librust-blake3-dev nlohmann-json3-dev
)
# Real peers and tools used by the tests (ARCHITECTURE.md: no mocks where the real thing runs).
TEST_PKGS=(
  python3 python3-cryptography dnsmasq-base shadowsocks-libev nginx-light curl prometheus openssl iproute2 procps
)
BENCH_PKGS=(iperf3 wrk openssl)

want=()
for group in "${@:-build}"; do
  case "$group" in
    build) want+=("${BUILD_PKGS[@]}") ;;
    test) want+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
    bench) want+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
    all) want+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
    *) echo "install_deps: unknown group '$group' (build|test|bench|all)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# De-duplicate.
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "install_deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Services that packages start on install (nginx, shadowsocks-libev) are not wanted here.
if [ ! -e /usr/sbin/policy-rc.d ] && [ -z "${SHADOWRELAY_KEEP_SERVICES:-}" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
