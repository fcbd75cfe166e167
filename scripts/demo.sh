#!/usr/bin/env bash
# Set up (scripts/setup.sh, with Slicer's MRML library for scene.mrb and the web app) and register the bundled sample
# pairs: results, Slicer scenes and PNGs in demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="[scene,web]" bash scripts/setup.sh
.venv/bin/learnreg demo --out "${1:-demo_output}"
