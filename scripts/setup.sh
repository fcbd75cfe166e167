#!/usr/bin/env bash
# Create .venv (if missing) and install learnreg into it; torch first, so that pip takes the pinned
# CPU build instead of resolving a bare "torch" to gigabytes of CUDA packages.
# Environment: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0), EXTRAS (e.g. "[test]").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${EXTRAS:-}"
