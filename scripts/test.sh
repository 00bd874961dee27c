#!/usr/bin/env bash
# Runs every test: formatting and lints, Rust unit and integration tests (real server on
# loopback against scripted mock upstreams), and the Python suite that drives the server with
# the official openai and anthropic SDKs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

TARGET_DIR=${CARGO_TARGET_DIR:-target}
echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --quiet --workspace --all-targets -- -D warnings
echo "== rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
echo "== python SDK tests"
cargo build --quiet --bin switchyard
SWITCHYARD_BIN="$TARGET_DIR/debug/switchyard" .venv/bin/python -m pytest -q tests/python
