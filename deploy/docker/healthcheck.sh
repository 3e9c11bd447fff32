#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Container HEALTHCHECK: healthy when GET /healthz on the metrics listener SHADOWRELAY_HEALTH_ADDR
# (default 127.0.0.1:9464) answers 200. /healthz needs no token, so this works with
# --metrics-token-file too. bash's /dev/tcp, since the slim image has no curl or wget.
set -u
addr="${SHADOWRELAY_HEALTH_ADDR:-127.0.0.1:9464}"
host="${addr%:*}"
port="${addr##*:}"
host="${host#[}"
host="${host%]}"
if ! exec 3<>"/dev/tcp/${host}/${port}"; then
  echo "unhealthy: cannot connect to ${addr}" >&2
  exit 1
fi
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "${addr}" >&3
status=""
IFS= read -r -t 5 status <&3 || true
exec 3<&-
case "${status}" in
  "HTTP/1."[01]" 200"*) exit 0 ;;
esac
echo "unhealthy: GET http://${addr}/healthz answered '${status%$'\r'}'" >&2
exit 1
