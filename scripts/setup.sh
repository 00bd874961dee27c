#!/usr/bin/env bash
# Sets up a fresh machine for Switchyard: the Python venv with the pinned SDKs used by the
# test suite, and the prompt encoders: MiniLM under models/encoder (scripts/setup_encoder.sh)
# and potion-base-8M under models/encoder-potion (scripts/setup_static_encoder.sh), and Debian's
# headless Chromium for the dashboard test (scripts/setup_browser.sh), and PostgreSQL and Redis on
# loopback for the fleet tests (scripts/setup_services.sh), and mdBook for the docs book
# (scripts/setup_docs.sh).
# Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt .venv/.requirements.txt; then
  echo "setup: creating .venv with pinned packages from requirements.txt"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/.requirements.txt
fi

scripts/setup_encoder.sh
scripts/setup_static_encoder.sh
scripts/setup_browser.sh
scripts/setup_services.sh
scripts/setup_docs.sh
