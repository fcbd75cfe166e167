#!/usr/bin/env bash
# Create .venv-peers with the benchmarks' peers: antspyx (ANTs SyN), itk-elastix (elastix), and nilearn (only
# for its MNI152 template). A separate environment because antspyx's install pins numpy and scipy versions
# that learnreg's .venv must not get.
# Environment: PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv-peers/bin/python ]; then
  "$PYTHON" -m venv .venv-peers
fi
.venv-peers/bin/python -m pip install --quiet --disable-pip-version-check antspyx itk-elastix nilearn
.venv-peers/bin/python -c "import ants, itk, nilearn; print('antspyx', ants.__version__, 'itk-elastix', itk.Version.GetITKVersion(), 'nilearn', nilearn.__version__, 'ready in .venv-peers')"
