"""Worlds: where prompts and their true qualities come from — a made-up quality function
(`World`) or recorded outcomes (`ReplayWorld`) — and the world file that describes one
(`load_spec`), checked before anything starts."""

import csv
import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A world's `knob`: a preset's cost weight, or a number.
KNOBS = {"best": 0.0, "balanced": 0.1, "cheap": 0.3}
# What a template's placeholders become: {w} one of the topic's words, {d} a word of the
# prompt's difficulty, {n} a number, {c} a century, {p} a place.
PLACEHOLDERS = {
    "{w}": lambda r, topic, words: r.choice(topic["words"]),
    "{d}": lambda r, topic, words: r.choice(words),
    "{n}": lambda r, topic, words: str(r.randint(2, 999)),
    "{c}": lambda r, topic, words: r.choice(["twelfth", "fifteenth", "eighteenth", "nineteenth"]),
    "{p}": lambda r, topic, words: r.choice(["venice", "carthage", "kyoto", "lisbon", "cordoba"]),
}


def knob_weight(knob):
    """The cost weight of a knob: a preset's, or the number itself."""
    return KNOBS[knob] if isinstance(knob, str) else float(knob)


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
        while "{" in text:
            i = text.index("{")
            key = text[i : text.index("}", i) + 1]
            text = text[:i] + PLACEHOLDERS[key](r, t, words) + text[i + len(key) :]
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
    "onboard": 0.1,
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
    need(number(spec["onboard"]) and 0 <= spec["onboard"] <= 1 - spec["explore"], "onboard", f"a share in [0, 1 - explore], not {spec['onboard']!r}")
    knob = spec["knob"]
    need(knob in KNOBS or (number(knob) and 0 <= knob <= 1), "knob", f"{', '.join(KNOBS)} or a cost weight in [0, 1], not {knob!r}")
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
        holes = [re.findall(r"\{[^{}]*\}", x) for x in t["templates"]]
        unknown = [x for x, h in zip(t["templates"], holes) if set(h) - set(PLACEHOLDERS) or x.count("{") != len(h)]
        need(not unknown, f"{key}.templates", f"the placeholders are {{w}} (a topic word), {{d}} (a difficulty word), {{n}}, {{c}}, {{p}}: {unknown[0] if unknown else ''!r}")
        need(not any("{w}" in h for h in holes) or (isinstance(t.get("words"), list) and t["words"]), f"{key}.words", "a list of words for {w}")
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


def fresh_test_prompts(spec):
    """The world's fresh test prompts the final curves are scored on (their own seed), and for
    a replay world the prompts of its held-out subjects (else none)."""
    tests_world = make_world(spec, seed_offset=99_991)
    if isinstance(tests_world, ReplayWorld):
        n = spec["test_prompts"]
        return tests_world.sample(tests_world.test_pool, n), tests_world.sample(tests_world.unseen_pool, n)
    return [tests_world.prompt() for _ in range(spec["test_prompts"])], []
