#!/usr/bin/env bash
# Builds mdBook (the docs book's builder, pinned) into .tools/bin from crates.io when it is
# missing or another version. Idempotent; a few minutes the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
MDBOOK_VERSION=0.5.4
if [ "$(.tools/bin/mdbook --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]; then
  echo "setup: building mdbook $MDBOOK_VERSION into .tools/"
  cargo install --quiet --locked --no-default-features --version "$MDBOOK_VERSION" --root .tools mdbook
fi
