#!/usr/bin/env bash
# Set up (scripts/setup.sh) and register the bundled sample pairs: results and PNGs in demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/learnreg demo --out "${1:-demo_output}"
