"""Training an artifact on a run's logs with `switchyard-train all --src none` and the run's
options."""

import subprocess
from pathlib import Path

from .worlds import ROOT


def train_flags(args, spec):
    """The `switchyard-train` flags this run's options ask for."""
    flags = ["--features", spec["signal"]["key"]] if spec.get("signal") and not args.no_features else []
    flags += [x for flag, v in (("--similarity-tau", args.similarity_tau), ("--pessimism", args.pessimism)) if v is not None for x in (flag, str(v))]
    return flags + (["--no-refit"] if args.no_refit else [])


def train_artifact(args, spec, logs, out, log_name):
    """`switchyard-train all` on the logs in `logs`, with this run's options, into `out/models`
    (outcome table, embedding cache and audit in `out`); its output goes to `out/log_name`."""
    common = ["--logs", str(logs), "--data", str(out / "outcomes.parquet"), "--cache", str(out / "cache.parquet"), "--audit", str(out / "audit.md")]
    t = subprocess.run([str(Path(args.bin) / "switchyard-train"), "all", "--src", "none", "--out", str(out / "models"), *train_flags(args, spec), *common], cwd=ROOT, capture_output=True, text=True)
    if t.returncode != 0:
        raise SystemExit(f"training failed:\n{t.stderr}")
    (out / log_name).write_text(t.stdout + t.stderr)
