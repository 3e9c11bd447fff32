#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The example alerting rules are valid and behave as their unit tests say:
#   alert_rules_test.sh alerts.yml alerts_test.yml prometheus.yml
set -eu
rules=$1
tests=$2
config=$3
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found in PATH: bazel/install_deps.sh test installs Debian's prometheus" >&2
  exit 1
fi
promtool check rules "$rules"
promtool test rules "$tests"
promtool check config "$config"
# The unit tests must cover every alert of the rules file.
for alert in $(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules"); do
  if ! grep -q "alertname: $alert\$" "$tests"; then
    echo "alert $alert has no test in $tests" >&2
    exit 1
  fi
done
