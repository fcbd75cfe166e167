#!/usr/bin/env bash
# Set up (scripts/setup.sh, with the test extras) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="[test]" bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
