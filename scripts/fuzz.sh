#!/usr/bin/env bash
# Fuzzes the request parser, the Anthropic translation and the SSE parser with libFuzzer
# (cargo-fuzz, stable toolchain, no sanitizer: safe Rust, so the search is for panics, hangs and
# runaway memory). Each target runs RUNS executions (default 10 million) from fuzz/seeds/<target>
# in a scratch corpus; a crash stops the script and leaves its input under fuzz/artifacts/.
#   scripts/fuzz.sh                 # all three targets, 10M runs each
#   RUNS=100000 scripts/fuzz.sh sse # one target, fewer runs
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10000000}
TARGETS=${*:-request anthropic sse}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for t in $TARGETS; do
  mkdir -p "$WORK/$t"
  cp fuzz/seeds/"$t"/* "$WORK/$t/"
  echo "== fuzz $t: $RUNS runs"
  start=$(date +%s)
  status=0
  (cd fuzz && cargo fuzz run --sanitizer none "$t" "$WORK/$t" -- \
      -runs="$RUNS" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1) \
      >"$WORK/$t.log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|panicked|ERROR|SUMMARY" "$WORK/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$WORK/$t.log" >&2
    echo "fuzz $t failed (exit $status); the input is under fuzz/artifacts/$t/" >&2
    exit 1
  fi
  echo "fuzz $t: $RUNS runs in $(( $(date +%s) - start )) s, corpus grew to $(ls "$WORK/$t" | wc -l) inputs"
done
