#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages shadowrelay needs, when missing. Shared by ./dev and
# deploy/docker/Dockerfile so that CI proves the image's install step.
#   bazel/install_deps.sh [build|test|bench|image|all]...   (default: build)
# Idempotent and quiet when everything is present; uses sudo only when not root.
set -euo pipefail

BUILD_PKGS=(
  bazel-bootstrap g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libc-ares-dev liburing-dev prometheus-cpp-dev libmicrohttpd-dev libgtest-dev libgmock-dev libbenchmark-dev
  libssl-dev android-libboringssl-dev librust-blake3-dev nlohmann-json3-dev
  # crypto/legacy_stream: salsa20, chacha20, chacha20-ietf (opt-in legacy stream methods).
  libsodium-dev
  # relay/acl: the name rules of ACL files (RE2, already what gRPC uses).
  libre2-dev
)
# Real peers and tools used by the tests (ARCHITECTURE.md: no mocks where the real thing runs).
TEST_PKGS=(
  python3 python3-cryptography dnsmasq-base shadowsocks-libev nginx-light curl prometheus openssl iproute2 procps
  # tests/e2e/plugin_e2e_test: SIP003 plugins (obfs-server/obfs-local, ss-v2ray-plugin).
  simple-obfs shadowsocks-v2ray-plugin
  # tests/deploy: the chart renderer (Go text/template + sprig, offline from Debian) and systemd-analyze.
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev systemd
  # tests/fuzz (--config=fuzz): clang, and libFuzzer with clang's sanitizer runtimes.
  clang libclang-rt-dev
  # tests/api/etcd and the etcd store's tests: a real 3-member etcd 3.4 (/usr/bin/etcd, etcdctl).
  etcd-server etcd-client
)
BENCH_PKGS=(iperf3 wrk openssl)
# ./dev test --image (tests/deploy/image_test.py): build the container image with Debian's podman
# from debootstrap-made base images (no image registry is reachable), then run it under chroot.
# The test's client side runs on the host: shadowsocks-libev's ss-local with obfs-local, curl.
IMAGE_PKGS=(podman debootstrap python3 shadowsocks-libev simple-obfs curl)

# tests/deploy's npm packages (Kubernetes and JSON schemas), installed from its package-lock.json
# into a fixed place outside Bazel's sandbox, where the tests look; redone only when the lock changes.
NODE_PREFIX="${SHADOWRELAY_NODE_PREFIX:-/var/cache/shadowrelay-test/node}"
install_node_modules() {
  local src stamp sudo="" log
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/deploy"
  [ -f "$src/package-lock.json" ] || return 0
  stamp="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
  if [ -d "$NODE_PREFIX/node_modules" ] && [ "$(cat "$NODE_PREFIX/.installed" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "install_deps: npm ci into $NODE_PREFIX" >&2
  $sudo mkdir -p "$NODE_PREFIX"
  $sudo cp "$src/package.json" "$src/package-lock.json" "$NODE_PREFIX/"
  log="$(mktemp)"
  if ! $sudo npm ci --prefix "$NODE_PREFIX" --no-audit --no-fund --ignore-scripts --loglevel=error >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
  echo "$stamp" | $sudo tee "$NODE_PREFIX/.installed" >/dev/null
}

want=()
want_node=0
for group in "${@:-build}"; do
  case "$group" in
    build) want+=("${BUILD_PKGS[@]}") ;;
    test) want+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"); want_node=1 ;;
    bench) want+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
    image) want+=("${IMAGE_PKGS[@]}") ;;
    all) want+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}" "${IMAGE_PKGS[@]}"); want_node=1 ;;
    *) echo "install_deps: unknown group '$group' (build|test|bench|image|all)" >&2; exit 2 ;;
  esac
done
if [ $want_node -eq 1 ] && ! command -v npm >/dev/null; then
  want+=(nodejs npm)
fi

missing=()
for pkg in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# De-duplicate.
if [ ${#missing[@]} -eq 0 ]; then
  [ $want_node -eq 0 ] || install_node_modules
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
[ $want_node -eq 0 ] || install_node_modules
