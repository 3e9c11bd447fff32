#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Bazel entry point of one Python test of tests/deploy (standard library only):
#   run_py.sh tests/deploy/X_test.py [args]
# Runs from the runfiles tree; the module writes its JUnit XML to $XML_OUTPUT_FILE.
set -eu
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$@"
