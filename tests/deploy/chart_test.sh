#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Bazel entry point of chart_test.js: builds helmrender with Debian's Go and sprig (GOPATH mode,
# offline; chart_test.js also runs its `go test`), then runs the test with the npm packages that
# bazel/install_deps.sh test installed.
#   chart_test.sh relay/shadowrelay
set -euo pipefail
relay="$PWD/$1"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
node_prefix="${SHADOWRELAY_NODE_PREFIX:-/var/cache/shadowrelay-test/node}"

for tool in go node promtool openssl etcd etcdctl; do
  if ! command -v "$tool" >/dev/null; then
    echo "chart_test: $tool is missing; run bazel/install_deps.sh test" >&2
    exit 1
  fi
done
want="$(cat tests/deploy/package.json tests/deploy/package-lock.json | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$node_prefix/.installed" 2>/dev/null)" != "$want" ]; then
  echo "chart_test: the npm packages in $node_prefix are missing or not those of" \
    "tests/deploy/package-lock.json; run bazel/install_deps.sh test" >&2
  exit 1
fi

export GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$tmp/gocache" GOFLAGS= CGO_ENABLED=0
go build -o "$tmp/helmrender" ./tests/deploy/helmrender

exec env NODE_PATH="$node_prefix/node_modules" node tests/deploy/chart_test.js \
  --render "$tmp/helmrender" \
  --chart deploy/helm/shadowrelay \
  --values tests/deploy/values \
  --grafana deploy/grafana/dashboards/shadowrelay.json \
  --alerts deploy/prometheus/alerts.yml \
  --relay "$relay"
