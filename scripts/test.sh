#!/usr/bin/env bash
# Set up (scripts/setup.sh with the test extras, scripts/setup_browser.sh for the browser tests) and run the
# test suite; here a missing browser fails the browser tests instead of skipping them.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="[test]" bash scripts/setup.sh
bash scripts/setup_browser.sh
LEARNREG_REQUIRE_BROWSER=1 .venv/bin/python -m pytest -q "$@"
