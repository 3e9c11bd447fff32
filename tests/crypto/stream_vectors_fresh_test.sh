#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The committed stream_vectors.h is exactly what gen_stream_vectors.py makes.
set -euo pipefail
dir="tests/crypto"
python3 "$dir/gen_stream_vectors.py" | diff -u "$dir/stream_vectors.h" - \
  && echo "stream_vectors.h is fresh"
