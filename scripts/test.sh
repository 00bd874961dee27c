#!/usr/bin/env bash
# Runs every test: formatting and lints, Rust unit and integration tests (real server on
# loopback against scripted mock upstreams), and the Python suite that drives the server with
# the official openai and anthropic SDKs; then the docs book (mdBook) and its links.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
step() { echo "== $1 (at $(( $(date +%s) - started )) s)"; }
scripts/setup.sh

TARGET_DIR=${CARGO_TARGET_DIR:-target}
step "cargo fmt --check"
cargo fmt --check
step "cargo clippy"
cargo clippy --quiet --workspace --all-targets -- -D warnings
step "docs: the book builds, its links and the paths it names resolve, the README stays short"
.tools/bin/mdbook build docs
.venv/bin/python scripts/check_docs.py
step "rust tests (every test with its time; slow ones listed again at the end)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
step "python SDK tests"
cargo build --quiet --workspace --bins
SWITCHYARD_BIN="$TARGET_DIR/debug/switchyard" .venv/bin/python -m pytest -v --durations=5 tests/python
step "done"
