#!/usr/bin/env bash
# Create .venv-peers with antspyx (ANTs) for the benchmarks' ANTs SyN peer. A separate environment because
# antspyx's install pins numpy and scipy versions that learnreg's .venv must not get.
# Environment: PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv-peers/bin/python ]; then
  "$PYTHON" -m venv .venv-peers
fi
.venv-peers/bin/python -m pip install --quiet --disable-pip-version-check antspyx
.venv-peers/bin/python -c "import ants; print('antspyx', ants.__version__, 'ready in .venv-peers')"
