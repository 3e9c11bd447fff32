#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Bazel entry point of one end-to-end test module (see e2e.bzl):
#   run_e2e.sh tests/e2e/X_e2e_test.py --relay=relay/shadowrelay
# Runs from the runfiles tree; the module writes its JUnit XML to $XML_OUTPUT_FILE.
set -eu
# Never write __pycache__ next to the sources (runfiles are symlinks into the workspace).
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$@"
