#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds deploy/docker/Dockerfile with Debian's podman where no image registry is reachable (this
# machine, CI): the debian:bookworm and debian:bookworm-slim base images are made with debootstrap
# from the Debian archive and imported under the names Docker Hub gives them, then
# `podman build --format docker --pull=never --isolation chroot --network host` builds the image.
#   deploy/docker/podman_build.sh [--tag NAME] [--disk-cache DIR|none] [--refresh-base]
# Needs root and `bazel/install_deps.sh image` (podman, debootstrap). deploy/README.md: "Building
# with podman". Prints the time of each step to stderr.
#
# --disk-cache DIR  mounted into the build stage as its Bazel --disk_cache, so that actions the host
#                   already built (same compiler, same sources: the same action keys) are not
#                   compiled again; default: the --disk_cache the host's Bazel uses, else
#                   $SHADOWRELAY_IMAGE_CACHE/bazel-disk. `none`: compile everything in the build.
# --refresh-base    debootstrap the base images again (they are cached as tarballs).
#
# Environment: SHADOWRELAY_IMAGE_CACHE (default /var/cache/shadowrelay-image) holds the rootfs
# tarballs; SHADOWRELAY_DEBIAN_MIRROR (default: the host's apt mirror, else
# http://deb.debian.org/debian) and SHADOWRELAY_DEBIAN_SECURITY (http://deb.debian.org/debian-security).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."

tag="localhost/shadowrelay:test"
disk_cache=""
refresh=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --disk-cache) disk_cache="$2"; shift 2 ;;
    --refresh-base) refresh=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "podman_build: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "podman_build: needs root (podman build --isolation chroot, debootstrap)" >&2
  exit 2
fi
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "podman_build: $tool missing: bazel/install_deps.sh image" >&2; exit 2; }
done

cache="${SHADOWRELAY_IMAGE_CACHE:-/var/cache/shadowrelay-image}"
mkdir -p "$cache"
SECONDS=0
step() { echo "podman_build: [${SECONDS}s] $*" >&2; }

host_mirror() {
  # The first deb.debian.org-style "URIs:" / "deb" line of the host's apt sources for bookworm.
  local uri
  uri="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
           /etc/apt/sources.list.d/*.sources |
         grep -oE 'https?://[^ ]+/debian/?( |$)' | head -1 | tr -d ' ')" || true
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${SHADOWRELAY_DEBIAN_MIRROR:-$(host_mirror)}"
security="${SHADOWRELAY_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"

# A minbase rootfs as a tarball: debootstrap (~2 min), then what the official images also do:
# deb822 sources with -updates and -security, no package lists or downloaded .debs.
make_rootfs() {
  local out="$1" dir
  dir="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$dir"' RETURN
  step "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 ||
    { tail -20 "$dir.log" >&2; rm -f "$dir.log"; return 1; }
  rm -f "$dir.log" "$dir/etc/apt/sources.list"
  cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/var/log/*.log
  tar --numeric-owner -C "$dir" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
}

# bookworm-slim: the same rootfs without documentation, manual pages and translations, and a
# dpkg configuration that keeps them out of later installs (as Docker Hub's -slim images do).
make_slim() {
  local full="$1" out="$2" dir
  dir="$(mktemp -d "$cache/slim.XXXXXX")"
  trap 'rm -rf "$dir"' RETURN
  tar -C "$dir" -xf "$full"
  find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* \
         "$dir"/usr/share/groff/* "$dir"/usr/share/lintian/* "$dir"/usr/share/linda/*
  cat >"$dir/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
# bookworm-slim (deploy/docker/podman_build.sh): no documentation, manual pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  tar --numeric-owner -C "$dir" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
}

# Imported only when missing or made from another tarball (the label records which), so that
# podman's layer cache of the build stays valid across runs.
import_base() {
  local tarball="$1" name="$2" sum have
  sum="$(sha256sum "$tarball" | cut -d' ' -f1)"
  have="$(podman image inspect --format '{{index .Labels "org.shadowrelay.rootfs-sha256"}}' "$name" 2>/dev/null || true)"
  if [ "$have" = "$sum" ]; then
    return 0
  fi
  step "podman import $name"
  podman import --quiet --change "LABEL org.shadowrelay.rootfs-sha256=$sum" --change 'CMD ["bash"]' \
    "$tarball" "$name" >/dev/null
}

full="$cache/bookworm-minbase.tar"
slim="$cache/bookworm-slim.tar"
if [ $refresh -eq 1 ] || [ ! -s "$full" ]; then
  make_rootfs "$full"
  rm -f "$slim"
fi
[ -s "$slim" ] || { step "bookworm-slim rootfs"; make_slim "$full" "$slim"; }
import_base "$full" docker.io/library/debian:bookworm
import_base "$slim" docker.io/library/debian:bookworm-slim

# The Bazel disk cache the host uses (~/.bazelrc, /etc/bazel/bazelrc, .bazelrc), when any.
host_disk_cache() {
  command -v bazel >/dev/null || return 0
  timeout 300 bazel info --announce_rc output_base 2>&1 |
    grep -oE -- "--disk_cache=[^' ]+" | tail -1 | cut -d= -f2- || true
}
if [ -z "$disk_cache" ]; then
  disk_cache="$(host_disk_cache)"
  disk_cache="${disk_cache:-$cache/bazel-disk}"
fi
build_args=()
if [ "$disk_cache" != "none" ]; then
  mkdir -p "$disk_cache"
  build_args+=(--volume "$disk_cache:/root/.cache/bazel-disk"
               --build-arg "BAZEL_DISK_CACHE=/root/.cache/bazel-disk")
fi

step "podman build -t $tag (disk cache: $disk_cache)"
# Each STEP line gets the seconds since this script started, so a log says where the time went.
stamp_steps() {
  local line
  while IFS= read -r line; do
    case "$line" in
      *"STEP "*) printf '[%ss] %s\n' "$SECONDS" "$line" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done
}
# --format docker: the OCI image format has no HEALTHCHECK (podman drops it with a warning).
if ! podman build --format docker --pull=never --isolation chroot --network host \
       --ignorefile deploy/docker/Dockerfile.dockerignore -f deploy/docker/Dockerfile \
       "${build_args[@]}" -t "$tag" . 2>&1 | stamp_steps; then
  step "podman build failed"
  exit 1
fi
step "built $tag"
