#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser test: Debian's `chromium` package (Playwright's
# own browser download does not work here; the Python `playwright` package from
# requirements.txt drives this one). Idempotent: does nothing when /usr/bin/chromium exists.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
fi
echo "setup: installing chromium from Debian's packages (for the dashboard browser test)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
