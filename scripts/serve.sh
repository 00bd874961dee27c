#!/usr/bin/env bash
# Builds Switchyard (release) and runs the gateway. With no arguments it serves the embedded
# default config (mock models, no API keys needed) on 127.0.0.1:8080.
# Extra arguments go to `switchyard serve`, e.g. --config switchyard.toml --listen 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "$0")/.."
# The prompt encoder of the default artifact, for `model: "auto"` (static routing works without
# it); scripts/setup_encoder.sh adds the MiniLM alternative.
scripts/setup_static_encoder.sh || echo "serve: the encoder could not be set up; model \"auto\" will be unavailable" >&2
cargo build --release --quiet --bin switchyard
exec "${CARGO_TARGET_DIR:-target}/release/switchyard" serve "$@"
