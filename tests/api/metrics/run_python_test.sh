#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Bazel entry point of a Python check (Debian's python3, standard library only):
#   run_python_test.sh tests/api/metrics/X_test.py --flags...
set -eu
# Never write __pycache__ next to the sources (runfiles are symlinks into the workspace).
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$@"
