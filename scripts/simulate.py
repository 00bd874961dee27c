#!/usr/bin/env python3
"""The closed loop against the real server, in a simulated world (sim/worlds/*.json).

A world has mock models with prices and a true probability of a good answer that depends on
the prompt's topic and difficulty. Each round: serve `requests_per_round` prompts through the
real `switchyard serve` (round 0, the cold start: a uniform A/B router over the models present
then; later rounds: `model: "auto"` at the world's knob with `[auto] explore`), post feedback
drawn from the true quality (simulated users, some of whom do not answer), train a new artifact
from all logs so far (`switchyard-train all --src none --logs ...`), estimate it off-policy on
this round's logs (`switchyard-train ope`), and let the server hot-reload it (artifact watch).

Per round it prints: mean true quality of the served answers, cost per 1k requests (as the
server reports it), regret against an oracle that knows the true quality (mean utility gap at
the knob's cost weight), traffic share per model, and the previous round's off-policy estimate
(DR, with its interval) next to the mean feedback observed online on its own (not explored)
decisions and the true quality of those decisions, which that feedback estimates. At the end, on fresh test
prompts and the world's true qualities: the learned router's cost-quality curve (via
`/v1/route` at 21 cost weights) against the oracle router's, as APGR (same definition for both:
upper hull of (normalised cost, PGR) points anchored at the cheapest and priciest models), and
the APGR of an oracle that sees only the prompt's topic, difficulty word and signal.

A replay world (`"replay"` in its file, e.g. sim/worlds/routellm-replay.json) is real outcome
data instead: benchmark prompts with each model's recorded outcome, whole subjects held out of
traffic as a second test set (see `ReplayWorld`).

Usage: python3 scripts/simulate.py [--world sim/worlds/default.json] [--explore X] [--rounds N]
       [--out target/sim] [--bin target/release]
`--refit DIR…` runs no loop: it retrains finished runs on the logs their final artifact was
trained on, with other training options, and scores the result on the same test prompts (a
fixed-data comparison, free of the loop's seed-to-seed noise); `--summarise DIR…` re-prints the
across-seeds table of finished runs.
Needs `cargo build --workspace --release --bins` (or --bin target/debug after `cargo build --workspace --bins`) and the potion encoder
(scripts/setup.sh). Seeded: the same world and flags give the same prompts and feedback.
"""

import argparse
import concurrent.futures as cf
import csv
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COST_WEIGHTS = [0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
KNOBS = {"best": 0.0, "balanced": 0.1, "cheap": 0.3}


def knob_weight(knob):
    """The cost weight of a knob: a preset's, or the number itself."""
    return KNOBS[knob] if isinstance(knob, str) else float(knob)


def sweep(spec):
    """The cost weights the learned router's curve is swept over: the fixed grid and the
    world's knob."""
    return sorted(set(COST_WEIGHTS) | {knob_weight(spec["knob"])})


class World:
    visible_label = "an oracle that sees only the prompt's topic, difficulty word and signal"

    def __init__(self, spec, seed_offset=0):
        self.spec = spec
        self.models = spec["models"]
        self.ids = [m["id"] for m in self.models]
        self.topics = spec["topics"]
        self.rng = random.Random(spec["seed"] + seed_offset)

    def prompt(self):
        """A prompt: (text, topic index, difficulty in [0, 1], metadata signal value or None)."""
        r = self.rng
        weights = [t["weight"] for t in self.topics]
        ti = r.choices(range(len(self.topics)), weights)[0]
        t = self.topics[ti]
        d = r.random()
        buckets = self.spec["difficulty_words"]
        words = buckets[min(len(buckets) - 1, int(d * len(buckets)))]
        text = r.choice(t["templates"])
        fills = {
            "{w}": lambda: r.choice(t["words"]),
            "{d}": lambda: r.choice(words),
            "{n}": lambda: str(r.randint(2, 999)),
            "{c}": lambda: r.choice(["twelfth", "fifteenth", "eighteenth", "nineteenth"]),
            "{p}": lambda: r.choice(["venice", "carthage", "kyoto", "lisbon", "cordoba"]),
        }
        while "{" in text:
            i = text.index("{")
            key = text[i : text.index("}", i) + 1]
            text = text[:i] + fills[key]() + text[i + len(key) :]
        sig = None
        signal = self.spec.get("signal")
        if signal:
            values = list(signal["values"])
            sig = r.choices(values, [signal["values"][v] for v in values])[0]
        return text, ti, d, sig

    def quality(self, model, topic, d, sig=None):
        base, slope = self.topics[topic]["quality"][model]
        effect = 0.0
        if sig is not None:
            effect = self.spec["signal"].get("effect", {}).get(sig, {}).get(model, 0.0)
        return min(0.98, max(0.02, base - slope * d + effect))

    def visible_quality(self, model, text, topic, sig=None):
        """The expected quality given what a router can see: the topic, the difficulty word when
        the prompt has one (else any difficulty) and the signal, averaged over the difficulty
        the word leaves open."""
        words = self.spec["difficulty_words"]
        tokens = set(text.replace(",", " ").replace("!", " ").split())
        bucket = next((b for b, ws in enumerate(words) if tokens & set(ws)), None)
        lo, hi = (0.0, 1.0) if bucket is None else (bucket / len(words), (bucket + 1) / len(words))
        grid = [lo + (hi - lo) * (i + 0.5) / 50 for i in range(50)]
        return sum(self.quality(model, topic, d, sig) for d in grid) / len(grid)

    def metadata(self, sig):
        return {} if sig is None else {self.spec["signal"]["key"]: sig}

    def cost(self, model, text):
        """USD of one answer: the mock's tokens (prompt ~ chars / 4, answer ~ echo) at the model's prices."""
        m = next(x for x in self.models if x["id"] == model)
        prompt_tokens = len(text) / 4 + 8
        answer_tokens = len(text.split()) + 6
        return (prompt_tokens * m["input_per_mtok"] + answer_tokens * m["output_per_mtok"]) / 1e6

    def present(self, round_no):
        return [m["id"] for m in self.models if m.get("from_round", 0) <= round_no]


def outcome(path, line, row, column):
    """A recorded outcome in [0, 1]: True/False (correct or not), or a score."""
    v = row.get(column)
    if row.get("prompt") is None or v is None:
        raise SystemExit(f"{path}: needs a `prompt` column and a `{column}` column (the models' `column` in the world file)")
    if v.strip().lower() in ("true", "false"):
        return 1.0 if v.strip().lower() == "true" else 0.0
    try:
        q = float(v)
    except ValueError:
        q = -1.0
    if not 0.0 <= q <= 1.0:
        raise SystemExit(f"{path}:{line}: {column}: {v!r} is not True/False or a score in [0, 1]")
    return q


class ReplayWorld(World):
    """A world made of real outcomes (`"replay"` in the spec): benchmark prompts, each with the
    recorded outcome of every model, read from RouteLLM-format CSVs under `source` (or its
    subfolders), one subject per file: a `prompt` column and one column per model (each model's
    `column`) holding True/False (correct or not) or a score in [0, 1], which simulated users
    answer with 1 at that probability.
    The split comes from the world's seed: `held_out_subjects` whole subjects never appear in
    traffic (their prompts are the unseen-subject test set), and `held_out_rows` of every other
    subject's prompts are its held-out-row test set; traffic is drawn from the rest without
    replacement. A prompt's true quality for a model is its recorded outcome, so the feedback is
    that outcome; the oracle router knows every prompt's outcomes (a ceiling no router reading
    the prompt reaches), the visible oracle only each model's accuracy per subject."""

    visible_label = "an oracle that knows each model's accuracy per subject"

    def __init__(self, spec, seed_offset=0):
        self.spec = spec
        self.models = spec["models"]
        self.ids = [m["id"] for m in self.models]
        src = ROOT / spec["replay"]["source"]
        exclude = set(spec["replay"].get("exclude", []))
        contaminated = set()
        for f in [*src.glob("contaminated_prompts.jsonl"), *src.glob("*/contaminated_prompts.jsonl")]:
            contaminated |= {json.loads(line)["eval_prompt"].strip() for line in f.read_text().splitlines() if line.strip()}
        self.topics, self.rows, seen = [], [], set()
        for f in sorted([*src.glob("*.csv"), *src.glob("*/*.csv")]):
            # A subject is a file: `mmlu/anatomy` for mmlu/mmlu_anatomy.csv, `anatomy` for anatomy.csv.
            stem = f.stem.removeprefix(f.parent.name + "_").removesuffix("_responses")
            name = stem if f.parent == src else f"{f.parent.name}/{stem}"
            if name in exclude:
                continue
            with f.open(newline="") as fh:
                rows = list(csv.DictReader(fh))
            ti = len(self.topics)
            self.topics.append({"name": name})
            for i, r in enumerate(rows):
                if r.get("prompt") in seen:
                    continue  # the same question twice (27 in RouteLLM's files): its first row only
                seen.add(r.get("prompt"))
                outcomes = {m["id"]: outcome(f, i + 2, r, m["column"]) for m in self.models}
                self.rows.append({"text": r["prompt"], "topic": ti, "outcomes": outcomes, "contaminated": r["prompt"].strip() in contaminated})
        split = random.Random(spec["seed"])
        unseen = set(split.sample(range(len(self.topics)), spec["replay"]["held_out_subjects"]))
        self.unseen_pool, self.test_pool, self.traffic = [], [], []
        for i, r in enumerate(self.rows):
            if r["topic"] in unseen:
                if not r["contaminated"]:
                    self.unseen_pool.append(i)
            elif not r["contaminated"] and split.random() < spec["replay"]["held_out_rows"]:
                self.test_pool.append(i)
            else:
                self.traffic.append(i)
        self.rng = random.Random(spec["seed"] + seed_offset)
        self.rng.shuffle(self.traffic)
        self.subject_rate = {}
        for ti in range(len(self.topics)):
            rs = [r for r in self.rows if r["topic"] == ti]
            self.subject_rate[ti] = {m: sum(r["outcomes"][m] for r in rs) / len(rs) for m in self.ids}

    def prompt(self):
        if not self.traffic:
            raise SystemExit("the replay world has no traffic prompts left: fewer rounds or requests")
        i = self.traffic.pop()
        return self.rows[i]["text"], self.rows[i]["topic"], i, None

    def quality(self, model, topic, d, sig=None):
        return self.rows[d]["outcomes"][model]

    def visible_quality(self, model, text, topic, sig=None):
        return self.subject_rate[topic][model]

    def sample(self, pool, n):
        return [(self.rows[i]["text"], self.rows[i]["topic"], i, None) for i in self.rng.sample(pool, min(n, len(pool)))]


# What a world file may leave out.
DEFAULTS = {
    "seed": 11,
    "knob": "balanced",
    "explore": 0.1,
    "rounds": 4,
    "requests_per_round": 600,
    "test_prompts": 400,
    "feedback_rate": 0.8,
    "difficulty_words": [["quick", "simple", "short"], ["detailed", "careful", "thorough"], ["rigorous", "expert-level", "research-grade"]],
}
# The quality the simulator configures for a model its world gives no `prior`, so that `auto`
# can serve it before the artifact has data on it: an uninformed guess.
DEFAULT_PRIOR = 0.5


def load_spec(path):
    """A world file with its defaults filled in, checked: a mistake names the file, the key and
    what is wrong, before any server starts."""
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"{path}: {e}")

    def need(ok, key, why):
        if not ok:
            raise SystemExit(f"{path}: {key}: {why}")

    need(isinstance(spec, dict), "(top level)", "a world is a JSON object")
    for k, v in DEFAULTS.items():
        spec.setdefault(k, v)
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    for k in ("seed", "rounds", "requests_per_round", "test_prompts"):
        need(isinstance(spec[k], int) and spec[k] >= (2 if k == "rounds" else 1), k, f"a whole number at least {2 if k == 'rounds' else 1}, not {spec[k]!r}")
    need(number(spec["feedback_rate"]) and 0 < spec["feedback_rate"] <= 1, "feedback_rate", f"a share in (0, 1], not {spec['feedback_rate']!r}")
    need(number(spec["explore"]) and 0 <= spec["explore"] < 1, "explore", f"a share in [0, 1), not {spec['explore']!r}")
    knob = spec["knob"]
    need(knob in ("best", "balanced", "cheap") or (number(knob) and 0 <= knob <= 1), "knob", f"best, balanced, cheap or a cost weight in [0, 1], not {knob!r}")
    models = spec.get("models")
    need(isinstance(models, list) and len(models) >= 2, "models", "a list of at least two models, each {id, input_per_mtok, output_per_mtok}")
    ids = []
    for i, m in enumerate(models):
        key = f"models[{i}]"
        need(isinstance(m, dict), key, "an object")
        mid = m.get("id")
        need(isinstance(mid, str) and mid.count("/") == 1 and all(part and all(c.isalnum() or c in "-_." for c in part) for part in mid.split("/")),
             f"{key}.id", f"provider/model (letters, digits, - _ .), not {mid!r}")
        need(mid not in ids, f"{key}.id", f"{mid} is listed twice")
        ids.append(mid)
        for price in ("input_per_mtok", "output_per_mtok"):
            need(number(m.get(price)) and m[price] >= 0, f"{key}.{price}", f"USD per million tokens, at least 0, not {m.get(price)!r}")
        need(isinstance(m.get("from_round", 0), int) and 0 <= m.get("from_round", 0) < spec["rounds"], f"{key}.from_round", f"a round from 0 to {spec['rounds'] - 1}")
        need("prior" not in m or (number(m["prior"]) and 0 <= m["prior"] <= 1), f"{key}.prior", f"a quality in [0, 1], not {m.get('prior')!r}")
    need(any(m.get("from_round", 0) == 0 for m in models), "models", "at least one model must be present from round 0 (the cold start)")
    if "replay" in spec:
        r = spec["replay"]
        need(isinstance(r, dict) and (ROOT / str(r.get("source", ""))).is_dir(), "replay.source", f"a directory of outcome CSVs under the repository, not {r.get('source') if isinstance(r, dict) else r!r}")
        need(isinstance(r.get("held_out_subjects"), int) and r["held_out_subjects"] >= 1, "replay.held_out_subjects", "a whole number at least 1")
        need(number(r.get("held_out_rows")) and 0 < r["held_out_rows"] < 1, "replay.held_out_rows", "a share in (0, 1)")
        for i, m in enumerate(models):
            need(isinstance(m.get("column"), str), f"models[{i}].column", "the outcome column of this model in the CSVs")
        return spec
    topics = spec.get("topics")
    need(isinstance(topics, list) and topics, "topics", "a list of topics, each {name, weight, templates, words, quality}")
    need(isinstance(spec["difficulty_words"], list) and spec["difficulty_words"] and all(isinstance(w, list) and w for w in spec["difficulty_words"]),
         "difficulty_words", "non-empty lists of words, easiest first: a prompt of difficulty d gets a word of list int(d × their number)")
    for i, t in enumerate(topics):
        key = f"topics[{i}]"
        need(isinstance(t, dict) and isinstance(t.get("name"), str), f"{key}.name", "a name")
        need(number(t.get("weight")) and t["weight"] > 0, f"{key}.weight", "a share of traffic above 0")
        need(isinstance(t.get("templates"), list) and t["templates"] and all(isinstance(x, str) for x in t["templates"]), f"{key}.templates", "a list of prompt templates")
        holes = {h for x in t["templates"] for h in ("{w}", "{d}", "{n}", "{c}", "{p}") if h in x}
        unknown = [x for x in t["templates"] if x.replace("{w}", "").replace("{d}", "").replace("{n}", "").replace("{c}", "").replace("{p}", "").count("{")]
        need(not unknown, f"{key}.templates", f"the placeholders are {{w}} (a topic word), {{d}} (a difficulty word), {{n}}, {{c}}, {{p}}: {unknown[0] if unknown else ''!r}")
        need("{w}" not in holes or (isinstance(t.get("words"), list) and t["words"]), f"{key}.words", "a list of words for {w}")
        q = t.get("quality")
        need(isinstance(q, dict), f"{key}.quality", "each model's [base, slope]: quality = base - slope * difficulty")
        for mid in ids:
            need(isinstance(q.get(mid), list) and len(q[mid]) == 2 and all(number(x) for x in q[mid]), f"{key}.quality.{mid}", "[base, slope] (numbers)")
        need(not set(q) - set(ids), f"{key}.quality", f"names models the world does not have: {sorted(set(q) - set(ids))}")
    sig = spec.get("signal")
    if sig is not None:
        need(isinstance(sig, dict) and isinstance(sig.get("key"), str) and sig["key"], "signal.key", "the metadata key")
        need(isinstance(sig.get("values"), dict) and sig["values"] and all(number(v) and v >= 0 for v in sig["values"].values()) and sum(sig["values"].values()) > 0,
             "signal.values", "each value's share of requests")
        for v, eff in sig.get("effect", {}).items():
            need(v in sig["values"] and isinstance(eff, dict) and all(m in ids and number(x) for m, x in eff.items()), f"signal.effect.{v}", "a value of signal.values, mapping models of the world to a quality change")
    return spec


def make_world(spec, seed_offset=0):
    return ReplayWorld(spec, seed_offset) if "replay" in spec else World(spec, seed_offset)


def http(base, path, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(world, knob, explore, models_dir, logs_dir, port, round_no=None):
    """The server's config for a round (default: the last, every model present): every model
    of the world served by a mock provider named by its id's prefix, the cold-start router, and
    `auto` over the models present in that round, a model without data on its prior."""
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        "[logging]",
        f'dir = "{logs_dir}"',
        "log_text = true",
    ]
    for provider in sorted({i.split("/")[0] for i in world.ids}):
        lines += [f"[providers.{provider}]", 'kind = "mock"']
    for m in world.models:
        lines += [
            "[[models]]",
            f'id = "{m["id"]}"',
            f'input_price_per_mtok = {m["input_per_mtok"]}',
            f'output_price_per_mtok = {m["output_per_mtok"]}',
            "context_window = 32768",
            "max_output_tokens = 4096",
        ]
    present0 = world.present(0)
    weights = [100 // len(present0)] * len(present0)
    weights[0] += 100 - sum(weights)
    variants = ", ".join(
        f'{{ name = "v{i}", model = "{m}", weight = {w} }}' for i, (m, w) in enumerate(zip(present0, weights))
    )
    lines += ["[routers.coldstart]", f"default = {{ variants = [{variants}] }}"]
    present = world.present(world.spec["rounds"] - 1 if round_no is None else round_no)
    priors = {m["id"]: m.get("prior", DEFAULT_PRIOR) for m in world.models if m["id"] in present}
    lines += [
        "[auto]",
        f'artifact = "{models_dir}"',
        f'default_knob = "{knob}"',
        "candidates = [" + ", ".join(f'"{i}"' for i in present) + "]",
        f"explore = {explore}",
        f"explore_seed = {world.spec['seed']}",
        "watch = true",
        "unfamiliar = \"predict\"",
    ]
    if priors:
        lines.append("[auto.priors]")
        lines += [f'"{k}" = {{ quality = {v} }}' for k, v in priors.items()]
    return "\n".join(lines) + "\n"


class Server:
    def __init__(self, binary, cfg_path, port, log_path):
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(cfg_path)], cwd=ROOT, stdout=self.log, stderr=self.log
        )
        for _ in range(200):
            try:
                if http(self.base, "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"the server did not start; see {log_path}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def serve_round(server, world, round_no, prompts, knob_model, explore_on):
    """Serves the prompts; posts feedback; returns per-request records."""

    def one(i_p):
        i, (text, topic, d, sig) = i_p
        body = {"model": knob_model, "messages": [{"role": "user", "content": text}], "user": f"r{round_no}-u{i}", "metadata": world.metadata(sig)}
        status, v = http(server.base, "/v1/chat/completions", body)
        if status != 200:
            raise SystemExit(f"request failed ({status}): {v}")
        model = v["model"]
        q = world.quality(model, topic, d, sig)
        rng = random.Random(world.spec["seed"] * 1_000_003 + round_no * 10_007 + i)
        good = 1.0 if rng.random() < q else 0.0
        answered = rng.random() < world.spec["feedback_rate"]
        if answered:
            s, fv = http(server.base, "/v1/feedback", {"request_id": v["metadata"]["request_id"], "score": good})
            if s != 200:
                raise SystemExit(f"feedback failed ({s}): {fv}")
        routing = v["metadata"].get("routing", {})
        return {
            "model": model,
            "true_quality": q,
            "feedback": good if answered else None,
            "cost_usd": v["metadata"]["cost_usd"],
            "world_cost": world.cost(model, text),
            "text": text,
            "topic": topic,
            "d": d,
            "sig": sig,
            "explored": routing.get("exploration", {}).get("explored", False),
        }

    # One at a time: the log order, the exploration draws and so the next artifact are the same
    # on every run.
    return [one(x) for x in enumerate(prompts)]


def utility(q, c, w, ref):
    return q - w * c / ref


def regret(world, records, w, present):
    ref = sum(max(world.cost(m, r["text"]) for m in present) for r in records) / len(records)
    total = 0.0
    for r in records:
        best = max(utility(world.quality(m, r["topic"], r["d"], r["sig"]), world.cost(m, r["text"]), w, ref) for m in present)
        total += best - utility(r["true_quality"], r["world_cost"], w, ref)
    return total / len(records)


def apgr(points, cheap, strong):
    """APGR of (cost, quality) points: upper hull over normalised cost, anchored at the ends."""
    span_c, span_q = strong[0] - cheap[0], strong[1] - cheap[1]
    xy = [((c - cheap[0]) / span_c, (q - cheap[1]) / span_q) for c, q in points]
    xy = sorted(set([(0.0, 0.0), (1.0, 1.0)] + [(min(max(x, 0.0), 1.0), y) for x, y in xy]))
    hull = []
    for p in xy:
        while len(hull) >= 2 and (hull[-1][0] - hull[-2][0]) * (p[1] - hull[-2][1]) - (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0]) >= 0:
            hull.pop()
        hull.append(p)
    # Non-decreasing: a cheaper point with higher PGR carries over to higher costs.
    area, best = 0.0, hull[0][1]
    for (x0, y0), (x1, y1) in zip(hull, hull[1:]):
        y0, y1 = max(y0, best), max(y1, best, y0)
        area += (x1 - x0) * (y0 + y1) / 2
        best = max(best, y1)
    return area


def oracle_at(world, tests, w, known=None):
    """The oracle's mean (cost, quality) at cost weight `w` on the test prompts. `known`: per
    test prompt, the quality of each model the oracle decides on (default the true one; see
    [`visible_qualities`])."""
    n = len(tests)
    ref = sum(max(world.cost(m, t[0]) for m in world.ids) for t in tests) / n

    def decide_on(m, i, t):
        return known[i][m] if known is not None else world.quality(m, t[1], t[2], t[3])

    chosen = [max(world.ids, key=lambda m: utility(decide_on(m, i, t), world.cost(m, t[0]), w, ref)) for i, t in enumerate(tests)]
    return (
        sum(world.cost(m, t[0]) for m, t in zip(chosen, tests)) / n,
        sum(world.quality(m, t[1], t[2], t[3]) for m, t in zip(chosen, tests)) / n,
    )


def visible_qualities(world, tests):
    """Per test prompt, each model's [`World.visible_quality`]: what an oracle that knows the
    quality function but sees only what the prompt shows decides on, the best any router
    reading the request can do."""
    return [{m: world.visible_quality(m, t[0], t[1], t[3]) for m in world.ids} for t in tests]


def curves(server, world, tests):
    """The learned router's and the oracle's (cost, quality) points on the test prompts."""
    ids = world.ids
    costs = {m: [world.cost(m, t[0]) for t in tests] for m in ids}
    quals = {m: [world.quality(m, t[1], t[2], t[3]) for t in tests] for m in ids}
    n = len(tests)

    def decide(args):
        w, (text, _, _, sig) = args
        s, v = http(server.base, "/v1/route", {"model": "auto", "messages": [{"role": "user", "content": text}], "router": {"cost_weight": w}, "metadata": {"explore": False, **world.metadata(sig)}})
        if s != 200:
            raise SystemExit(f"/v1/route failed ({s}): {v}")
        return v["model"]

    learned = []
    with cf.ThreadPoolExecutor(8) as ex:
        for w in sweep(world.spec):
            chosen = list(ex.map(decide, [(w, t) for t in tests]))
            learned.append((
                sum(costs[m][i] for i, m in enumerate(chosen)) / n,
                sum(quals[m][i] for i, m in enumerate(chosen)) / n,
            ))
    oracle = [oracle_at(world, tests, x / 100) for x in range(0, 301)]
    seen = visible_qualities(world, tests)
    visible = [oracle_at(world, tests, x / 100, seen) for x in range(0, 301)]
    singles = {m: (sum(costs[m]) / n, sum(quals[m]) / n) for m in ids}
    cheap = min(singles.values())
    strong = max(singles.values(), key=lambda p: p[0])
    return apgr(learned, cheap, strong), apgr(oracle, cheap, strong), apgr(visible, cheap, strong), singles, learned


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


def fresh_test_prompts(spec):
    """The world's fresh test prompts the final curves are scored on (their own seed), and for
    a replay world the prompts of its held-out subjects (else none)."""
    tests_world = make_world(spec, seed_offset=99_991)
    if isinstance(tests_world, ReplayWorld):
        n = spec["test_prompts"]
        return tests_world.sample(tests_world.test_pool, n), tests_world.sample(tests_world.unseen_pool, n)
    return [tests_world.prompt() for _ in range(spec["test_prompts"])], []


def refit(args, run_dir):
    """Fixed-data comparison: trains, with this invocation's training options, on the logs a
    finished run's final artifact was trained on (all rounds but the last) and scores its
    cost-quality curve on that run's test prompts, as the run did. Differences between training
    options then show without the loop's feedback (other artifacts route differently, so later
    rounds get other outcomes), which makes seed-to-seed noise several times larger."""
    summary = json.loads((run_dir / "summary.json").read_text())
    world_path = Path(summary["world"])
    spec = load_spec(world_path if world_path.is_absolute() else ROOT / world_path)
    spec["seed"] = summary["seed"]
    world = make_world(spec)
    tests, unseen = fresh_test_prompts(spec)
    out = Path(args.out) / run_dir.parent.name / run_dir.name
    shutil.rmtree(out, ignore_errors=True)
    (out / "logs").mkdir(parents=True)
    for r in range(len(summary["rounds"]) - 1):
        for f in (run_dir / f"logs-{r}").glob("*.ndjson"):
            os.link(f, out / "logs" / f.name)
    shutil.copy(run_dir / "cache.parquet", out / "cache.parquet")
    train_artifact(args, spec, out / "logs", out, "train.log")
    port = free_port()
    cfg = out / "serve.toml"
    cfg.write_text(config(world, spec["knob"], 0.0, out / "models", out / "serve-logs", port))
    server = Server(Path(args.bin) / "switchyard", cfg, port, out / "server.log")
    try:
        learned, oracle, _, _, _ = curves(server, world, tests)
        unseen_learned = curves(server, world, unseen)[0] if unseen else None
    finally:
        server.stop()
    before = summary["apgr"]["oracle"] - summary["apgr"]["learned"]
    also = f"; held-out subjects: learned {unseen_learned:.3f} (the run's own artifact: {summary['apgr']['unseen_subjects']['learned']:.3f})" if unseen else ""
    print(f"{run_dir}: APGR learned {learned:.3f}, oracle {oracle:.3f}, gap {oracle - learned:.3f} (the run's own artifact: {before:.3f}){also}", flush=True)
    return {"learned": learned, "gap": oracle - learned, "own_gap": before, "unseen": unseen_learned, "own_unseen": summary["apgr"]["unseen_subjects"]["learned"] if unseen else None}


def run(args, seed=None):
    spec = load_spec(args.world)
    if args.rounds is not None:
        spec["rounds"] = args.rounds
    if seed is not None:
        spec["seed"] = seed
    if args.requests is not None:
        spec["requests_per_round"] = args.requests
    explore = spec["explore"] if args.explore is None else args.explore
    world = make_world(spec)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "models").mkdir(parents=True)
    all_logs = out / "logs-all"
    all_logs.mkdir()
    binary = Path(args.bin) / "switchyard"
    train = Path(args.bin) / "switchyard-train"
    for b in (binary, train):
        if not b.exists():
            raise SystemExit(f"{b} is missing: cargo build --workspace --release --bins (or cargo build --workspace --bins and --bin target/debug)")
    knob = spec["knob"]
    w_knob = knob_weight(knob)
    tests, unseen = fresh_test_prompts(spec)
    print(f"world {args.world}: {len(world.ids)} models, {len(world.topics)} topics, knob {knob} (cost weight {w_knob}), explore {explore}, {spec['rounds']} rounds of {spec['requests_per_round']} requests")
    for m in world.models:
        if m.get("from_round", 0) > 0 and "prior" not in m:
            print(f"{m['id']} joins in round {m['from_round']} without a prior in the world file: configured at quality {DEFAULT_PRIOR} until it has data")
    print("| round | serving | mean true quality | $ per 1k | regret vs oracle | traffic share | explored | mean feedback | OPE of this artifact (DR, 95 %) | its feedback online (not explored) | their true quality | OPE within interval (feedback / true) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    pending_ope = None
    for round_no in range(spec["rounds"]):
        logs = out / f"logs-{round_no}"
        port = free_port()
        cfg = out / f"round-{round_no}.toml"
        cfg.write_text(config(world, knob, explore, out / "models", logs, port, round_no))
        server = Server(binary, cfg, port, out / "server.log")
        try:
            if round_no > 0:
                for _ in range(100):
                    s, v = http(server.base, "/v1/models")
                    a = next(m for m in v["data"] if m["id"] == "auto")
                    if a.get("available"):
                        break
                    time.sleep(0.1)
                else:
                    raise SystemExit(f"auto did not become available: {a}")
            prompts = [world.prompt() for _ in range(spec["requests_per_round"])]
            serving = "router/coldstart" if round_no == 0 else "auto"
            recs = serve_round(server, world, round_no, prompts, serving, explore > 0)
            if round_no == spec["rounds"] - 1:
                learned_apgr, oracle_apgr, visible_apgr, singles, learned_points = curves(server, world, tests)
                unseen_curves = curves(server, world, unseen) if unseen else None
        finally:
            server.stop()
        for f in logs.glob("*.ndjson"):
            os.link(f, all_logs / f.name)
        n = len(recs)
        final_records = recs
        present = world.present(round_no)
        share = {m: sum(r["model"] == m for r in recs) / n for m in world.ids}
        fb = [r["feedback"] for r in recs if r["feedback"] is not None]
        observed = sum(fb) / len(fb)
        # The off-policy estimate is of the artifact's own choices: compare it with the feedback
        # on the requests it decided (not the explored ones).
        fb_exploit = [r["feedback"] for r in recs if r["feedback"] is not None and not r["explored"]]
        observed_exploit = sum(fb_exploit) / len(fb_exploit)
        # What that feedback estimates: the mean true quality of those decisions (the
        # feedback is a coin flip at it, +-0.02 over a round's few hundred answers).
        exploit = [r["true_quality"] for r in recs if not r["explored"]]
        value_exploit = sum(exploit) / len(exploit)
        row = {
            "round": round_no,
            "serving": serving,
            "true_quality": sum(r["true_quality"] for r in recs) / n,
            "cost_per_1k": 1000 * sum(r["cost_usd"] for r in recs) / n,
            "world_cost_per_1k": 1000 * sum(r["world_cost"] for r in recs) / n,
            "regret": regret(world, recs, w_knob, present),
            "share": share,
            "explored": sum(r["explored"] for r in recs) / n,
            "observed_feedback": observed,
            "observed_feedback_not_explored": observed_exploit,
            "true_quality_not_explored": value_exploit,
            "ope": pending_ope,
        }
        ope_cell, within = "—", "—"
        if pending_ope and pending_ope.get("value") is not None:
            lo, hi = pending_ope["ci95"]
            ope_cell = f"{pending_ope['value']:.3f} [{lo:.3f}, {hi:.3f}]"
            row["ope_within"] = lo <= observed_exploit <= hi
            row["ope_within_true"] = lo <= value_exploit <= hi
            within = "/".join("yes" if row[k] else "no" for k in ("ope_within", "ope_within_true"))
        elif pending_ope:
            ope_cell = "no estimate (thin support)"
        rows.append(row)
        print(f"| {round_no} | {serving} | {row['true_quality']:.3f} | ${row['cost_per_1k']:.4f} | {row['regret']:.4f} | "
              + ", ".join(f"{m.split('/')[-1]} {s*100:.0f}%" for m, s in share.items())
              + f" | {row['explored']*100:.1f}% | {observed:.3f} | {ope_cell} | {observed_exploit:.3f} | {value_exploit:.3f} | {within} |", flush=True)
        # Train on everything logged so far; estimate the new artifact on this round's logs.
        train_artifact(args, spec, all_logs, out, f"train-{round_no}.log")
        pending_ope = None
        if round_no > 0:
            o = subprocess.run([str(train), "ope", "--logs", str(logs), "--artifact", str(out / "models"), "--cache", str(out / "cache.parquet"), "--reports", str(out / "ope"), "--bootstrap", "300"], cwd=ROOT, capture_output=True, text=True)
            if o.returncode != 0:
                raise SystemExit(f"ope failed:\n{o.stderr}")
            report = Path(o.stdout.strip().splitlines()[-1])
            pending_ope = json.loads((report / "metrics.json").read_text())["new_policy"]["quality"]["dr"]
    last = rows[-1]
    best_single = max(singles.items(), key=lambda kv: kv[1][1])
    print()
    print(f"best single model on the test prompts: {best_single[0]} quality {best_single[1][1]:.3f} at ${1000*best_single[1][0]:.4f} per 1k (world prices)")
    at_knob = oracle_at(world, tests, w_knob)
    print(f"oracle router at the knob (true qualities): quality {at_knob[1]:.3f} at ${1000*at_knob[0]:.4f} per 1k (world prices)")
    print(f"learned router at the knob, online in round {last['round']}: quality {last['true_quality']:.3f} at ${last['cost_per_1k']:.4f} per 1k (server-reported; world prices: ${last['world_cost_per_1k']:.4f})")
    verdict = last["true_quality"] > best_single[1][1] and last["world_cost_per_1k"] < 1000 * best_single[1][0]
    print(f"higher quality than the best single model at lower cost: {'yes' if verdict else 'no'}")
    greedy = learned_points[sweep(spec).index(w_knob)]
    greedy_verdict = greedy[1] > best_single[1][1] and greedy[0] < best_single[1][0]
    print(f"learned policy at the knob on the test prompts, without exploration: quality {greedy[1]:.3f} at ${1000*greedy[0]:.4f} per 1k (world prices); higher quality than the best single model at lower cost: {'yes' if greedy_verdict else 'no'}")
    print(f"APGR on the test prompts' true qualities: learned {learned_apgr:.3f}, oracle router {oracle_apgr:.3f}, gap {oracle_apgr - learned_apgr:.3f}; "
          f"{world.visible_label} {visible_apgr:.3f} (gap to it {visible_apgr - learned_apgr:.3f})")
    if unseen_curves:
        u_learned, u_oracle, u_visible, u_singles, _ = unseen_curves
        print(f"APGR on {len(unseen)} prompts of the {spec['replay']['held_out_subjects']} subjects held out of all traffic: learned {u_learned:.3f}, oracle router {u_oracle:.3f}, "
              f"{world.visible_label} {u_visible:.3f}; single models " + ", ".join(f"{m.split('/')[-1]} {q:.3f} at ${1000*c:.4f} per 1k" for m, (c, q) in u_singles.items()))
    print("\nfinal round, traffic share per topic (oracle at the knob in brackets):")
    last_recs = final_records
    for ti, t in enumerate(world.topics):
        mine = [r for r in last_recs if r["topic"] == ti]
        if not mine:
            continue
        ref = sum(max(world.cost(m, r["text"]) for m in world.ids) for r in last_recs) / len(last_recs)
        oracle = [max(world.ids, key=lambda m: utility(world.quality(m, ti, r["d"], r["sig"]), world.cost(m, r["text"]), w_knob, ref)) for r in mine]
        cells = [f"{m.split('/')[-1]} {100*sum(r['model'] == m for r in mine)/max(1,len(mine)):.0f}% [{100*sum(o == m for o in oracle)/max(1,len(mine)):.0f}%]" for m in world.ids]
        print(f"  {t['name']}: " + ", ".join(cells))
    if spec.get("signal"):
        key = spec["signal"]["key"]
        print(f"final round, traffic share by metadata {key} (oracle at the knob in brackets):")
        ref = sum(max(world.cost(m, r["text"]) for m in world.ids) for r in last_recs) / len(last_recs)
        for sig in spec["signal"]["values"]:
            mine = [r for r in last_recs if r["sig"] == sig]
            oracle = [max(world.ids, key=lambda m: utility(world.quality(m, r["topic"], r["d"], sig), world.cost(m, r["text"]), w_knob, ref)) for r in mine]
            cells = [f"{m.split('/')[-1]} {100*sum(r['model'] == m for r in mine)/max(1,len(mine)):.0f}% [{100*sum(o == m for o in oracle)/max(1,len(mine)):.0f}%]" for m in world.ids]
            print(f"  {sig}: " + ", ".join(cells))
    judged = [r["ope_within"] for r in rows if "ope_within" in r]
    if judged:
        true = sum(r["ope_within_true"] for r in rows if "ope_within" in r)
        print(f"OPE estimate's interval holds the feedback observed online in {sum(judged)}/{len(judged)} rounds, the true quality of those decisions in {true}/{len(judged)}")
    summary = {"world": args.world, "seed": spec["seed"], "explore": explore, "best_single": {"model": best_single[0], "quality": best_single[1][1], "cost_per_1k": 1000 * best_single[1][0]}, "oracle_at_knob": {"quality": at_knob[1], "cost_per_1k": 1000 * at_knob[0]}, "rounds": rows, "apgr": {"learned": learned_apgr, "oracle": oracle_apgr, "visible_oracle": visible_apgr, **({"unseen_subjects": {"learned": unseen_curves[0], "oracle": unseen_curves[1], "visible_oracle": unseen_curves[2]}} if unseen_curves else {})}, "singles": singles, "learned_at_knob": greedy, "learned_curve": [{"cost_weight": w, "cost_per_1k": 1000 * c, "quality": q} for w, (c, q) in zip(sweep(spec), learned_points)], "oracle_curve": [{"cost_weight": w, "cost_per_1k": 1000 * c, "quality": q} for w in sweep(spec) for c, q in [oracle_at(world, tests, w)]]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"written {out / 'summary.json'}")
    return summary


def across(summaries):
    """One line per seed and the means: the targets, judged on every seed."""
    print("\n| seed | online round-3 quality, $ per 1k | final policy at the knob, $ per 1k | best single, $ per 1k | beats it (policy) | beats it (online) | APGR learned / oracle (gap) | OPE interval holds feedback / true quality |")
    print("|---|---|---|---|---|---|---|---|")
    beats, beats_online, gaps, ope = 0, 0, [], [0, 0, 0]
    for s in summaries:
        last, bs, pol = s["rounds"][-1], s["best_single"], s["learned_at_knob"]
        b = pol is not None and pol[1] > bs["quality"] and 1000 * pol[0] < bs["cost_per_1k"]
        bo = last["true_quality"] > bs["quality"] and last["world_cost_per_1k"] < bs["cost_per_1k"]
        judged = [r["ope_within"] for r in s["rounds"] if "ope_within" in r]
        true = sum(r["ope_within_true"] for r in s["rounds"] if "ope_within" in r)
        beats += b
        beats_online += bo
        gaps.append(s["apgr"]["oracle"] - s["apgr"]["learned"])
        ope[0] += sum(judged)
        ope[1] += len(judged)
        ope[2] += true
        print(f"| {s['seed']} | {last['true_quality']:.3f}, ${last['world_cost_per_1k']:.3f} | {pol[1]:.3f}, ${1000*pol[0]:.3f} | {bs['quality']:.3f}, ${bs['cost_per_1k']:.3f} | {'yes' if b else 'no'} | {'yes' if bo else 'no'} | {s['apgr']['learned']:.3f} / {s['apgr']['oracle']:.3f} ({gaps[-1]:.3f}) | {sum(judged)}/{len(judged)} / {true}/{len(judged)} |")
    n = len(summaries)
    mean = lambda xs: sum(xs) / len(xs)
    rounds = range(1, min(len(s["rounds"]) for s in summaries))
    share = lambda m: " / ".join(f"{100 * mean([s['rounds'][r]['share'].get(m, 0.0) for s in summaries]):.0f}" for r in rounds)
    print(f"\nmeans over {n} seeds: online round-3 quality {mean([s['rounds'][-1]['true_quality'] for s in summaries]):.3f} at ${mean([s['rounds'][-1]['world_cost_per_1k'] for s in summaries]):.3f} per 1k; "
          f"final policy at the knob {mean([s['learned_at_knob'][1] for s in summaries]):.3f} at ${mean([1000 * s['learned_at_knob'][0] for s in summaries]):.3f}; "
          f"APGR learned {mean([s['apgr']['learned'] for s in summaries]):.3f}, oracle {mean([s['apgr']['oracle'] for s in summaries]):.3f}; "
          + "; ".join(f"{m.split('/')[-1]} share in rounds {rounds.start}-{rounds.stop - 1}: {share(m)} %" for m in summaries[0]["rounds"][-1]["share"]))
    if all("unseen_subjects" in s["apgr"] for s in summaries):
        a = lambda f: mean([f(s["apgr"]) for s in summaries])
        print(f"replay world, over {n} seeds: APGR on held-out prompts learned {a(lambda x: x['learned']):.3f} (min {min(s['apgr']['learned'] for s in summaries):.3f}), "
              f"per-subject oracle {a(lambda x: x['visible_oracle']):.3f}; on held-out subjects learned {a(lambda x: x['unseen_subjects']['learned']):.3f} "
              f"(min {min(s['apgr']['unseen_subjects']['learned'] for s in summaries):.3f}), per-subject oracle {a(lambda x: x['unseen_subjects']['visible_oracle']):.3f}; a random mix of the two is 0.500")
    print(f"over {n} seeds: the final policy beats the best single model (higher quality, lower cost) on {beats}/{n}, online on {beats_online}/{n}; "
          f"mean APGR gap {sum(gaps)/n:.3f} (max {max(gaps):.3f}, within 0.05 on {sum(g <= 0.05 for g in gaps)}/{n}); OPE interval holds the feedback observed online in {ope[0]}/{ope[1]} judged rounds, the true quality of those decisions in {ope[2]}/{ope[1]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default=str(ROOT / "sim/worlds/default.json"))
    p.add_argument("--summarise", nargs="+", metavar="DIR", help="run nothing: print the across-seeds table of earlier runs (their DIR/seed-*/summary.json)")
    p.add_argument("--refit", nargs="+", metavar="DIR", help="run no loop: retrain each finished run (DIR, or DIR/seed-*) on the logs its final artifact was trained on, with this invocation's training options, and score it on the run's test prompts (into OUT/...)")
    p.add_argument("--explore", type=float, default=None, help="override the world's exploration share")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--requests", type=int, default=None, help="override the world's requests per round")
    p.add_argument("--no-features", action="store_true", help="train without the world's metadata signal as a feature")
    p.add_argument("--similarity-tau", type=float, default=None, help="train with this similarity_tau (switchyard-train --similarity-tau)")
    p.add_argument("--pessimism", type=float, default=None, help="train with this pessimism (switchyard-train --pessimism)")
    p.add_argument("--no-refit", action="store_true", help="serve each artifact as fitted on its training rows alone (switchyard-train --no-refit)")
    p.add_argument("--out", default=str(ROOT / "target/sim"))
    release = ROOT / "target/release"
    p.add_argument("--bin", default=str(release if (release / "switchyard-train").exists() else ROOT / "target/debug"))
    p.add_argument("--seeds", default=None, help="comma-separated world seeds: run each (into OUT/seed-N) and summarise the targets across them")
    args = p.parse_args()
    if args.summarise:
        files = sorted((f for d in args.summarise for f in Path(d).glob("seed-*/summary.json")), key=lambda f: (str(f.parent.parent), int(f.parent.name[5:])))
        if not files:
            raise SystemExit(f"no seed-*/summary.json under {' '.join(args.summarise)}")
        across([json.loads(f.read_text()) for f in files])
        return
    if args.refit:
        dirs = [Path(d) for d in args.refit if (Path(d) / "summary.json").is_file()]
        dirs += sorted((f.parent for d in args.refit for f in Path(d).glob("seed-*/summary.json")), key=lambda p: (str(p.parent), int(p.name[5:])))
        if not dirs:
            raise SystemExit(f"no summary.json in or under (seed-*) {' '.join(args.refit)}")
        runs = [refit(args, d) for d in dirs]
        mean = lambda k: sum(r[k] for r in runs) / len(runs)
        within = lambda k: sum(r[k] <= 0.05 for r in runs)
        print(f"over {len(runs)} runs: mean APGR learned {mean('learned'):.4f}, gap {mean('gap'):.4f} (within 0.05 on {within('gap')}), "
              f"the runs' own artifacts {mean('own_gap'):.4f} (within 0.05 on {within('own_gap')})")
        if all(r["unseen"] is not None for r in runs):
            print(f"held-out subjects: mean APGR {mean('unseen'):.4f}, the runs' own artifacts {mean('own_unseen'):.4f}")
        return
    if args.seeds is None:
        run(args)
        return
    base = args.out
    summaries = []
    for seed in [int(x) for x in args.seeds.split(",")]:
        args.out = f"{base}/seed-{seed}"
        summaries.append(run(args, seed))
    across(summaries)


if __name__ == "__main__":
    sys.exit(main())
