#!/usr/bin/env bash
# Debian's chromium for the browser tests (Playwright drives it through executable_path; Playwright's own
# browser download is not used). Installs it with apt when it is missing (root, or sudo).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "installing Debian's chromium for the browser tests (about 480 MB, a minute)"
$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
