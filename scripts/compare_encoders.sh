#!/usr/bin/env bash
# Encoder and token-budget comparison of the learned router (docs/src/benchmarks.md, "Encoders and token
# budget" table): trains one artifact per (encoder variant, split) on data/outcomes.parquet,
# evaluates each on its test prompts and writes evals/encoders.md.
#
# Variants: potion-base-8M reading the first 64, 128 and 256 tokens (256 is the default encoder)
# and all-MiniLM-L6-v2 (256 tokens; needs scripts/setup_encoder.sh). A budget variant is a copy
# of models/encoder-potion/ whose manifest reads fewer tokens under its own encoder id, so its
# embeddings never mix with the default's in a cache.
# Work files go to target/encoder-comparison/ (git-ignored). MiniLM embeds every prompt once
# (minutes on two cores); later runs read its cache. Usage:
#   scripts/compare_encoders.sh [--no-minilm]
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=target/encoder-comparison
TRAIN=target/debug/switchyard-train
mkdir -p "$WORK"
# The workspace build (as the tests and the simulator do): building this crate alone
# resolves shared dependencies with other features and recompiles polars.
cargo build --quiet --workspace --bins
[ -f data/outcomes.parquet ] || "$TRAIN" import

variants=(potion-64 potion-128 potion-256)
[ "${1:-}" = "--no-minilm" ] || variants+=(minilm-256)

encoder_dir() {
  case "$1" in
    potion-256) echo models/encoder-potion ;;
    minilm-256) echo models/encoder ;;
    potion-*)
      local budget=${1#potion-} dir="$WORK/encoder-$1"
      mkdir -p "$dir"
      for f in model.safetensors tokenizer.json ATTRIBUTION.txt; do
        ln -sf "$(pwd)/models/encoder-potion/$f" "$dir/$f"
      done
      python3 - "$budget" models/encoder-potion/manifest.json "$dir/manifest.json" <<'PY'
import json, sys
budget, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
m = json.load(open(src))
m["max_tokens"] = budget
m["encoder_id"] = f'{m["encoder_id"]}@{budget}'
json.dump(m, open(dst, "w"), indent=1)
PY
      echo "$dir" ;;
  esac
}

for v in "${variants[@]}"; do
  enc=$(encoder_dir "$v")
  for split in split split_subject; do
    out="$WORK/$v/$split"
    mkdir -p "$out"
    echo "== $v, $split"
    "$TRAIN" fit --encoder "$enc" --split "$split" --out "$out" --cache "$WORK/cache-$v.parquet"
    "$TRAIN" eval --encoder "$enc" --artifact "$out" --reports "$WORK/reports" --cache "$WORK/cache-$v.parquet"
    echo "$(cat "$out/LATEST")" > "$out/VERSION"
  done
done

python3 - "$WORK" "${variants[@]}" <<'PY'
import json, sys
work, variants = sys.argv[1], sys.argv[2:]
rows = []
for v in variants:
    cells = [v.replace("-", ", ") + " tokens"]
    for split in ("split", "split_subject"):
        version = open(f"{work}/{v}/{split}/VERSION").read().split()[0].removeprefix("router-")
        m = json.load(open(f"{work}/reports/{version}/metrics.json"))
        for subset in ("pooled", "subject-balanced"):
            s = m["subsets"][subset]
            apgr = next(r["summary"]["apgr"] for r in s["routers"] if r["router"] == "learned")
            lo, hi = s["learned_ci95"]["apgr"]
            cells.append(f"{apgr:.3f} [{lo:.3f}, {hi:.3f}]")
    rows.append("| " + " | ".join(cells) + " |")
table = "\n".join([
    "# Encoders and token budget",
    "",
    "Made by `scripts/compare_encoders.sh`: one artifact per encoder variant and split, trained and",
    "evaluated like the default (learned router = kNN + ridge blend); APGR of the learned router on",
    "the test prompts with its 95 % bootstrap interval.",
    "",
    "| encoder, budget | random split, pooled | random split, subject-balanced | held-out subjects, pooled | held-out subjects, subject-balanced |",
    "|---|---|---|---|---|",
    *rows,
    "",
])
open("evals/encoders.md", "w").write(table)
print(table)
PY
