"""How a router is scored on a world's true qualities: utility at a cost weight, regret
against the oracle, the cost-quality curve swept over cost weights and its APGR."""

import concurrent.futures as cf
import json
import subprocess

from .gateway import route
from .worlds import knob_weight

COST_WEIGHTS = [0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def sweep(spec):
    """The cost weights the learned router's curve is swept over: the fixed grid and the
    world's knob."""
    return sorted(set(COST_WEIGHTS) | {knob_weight(spec["knob"])})


def utility(q, c, w, ref):
    return q - w * c / ref


def regret(world, records, w, present):
    ref = sum(max(world.cost(m, r["text"]) for m in present) for r in records) / len(records)
    total = 0.0
    for r in records:
        best = max(utility(world.quality(m, r["topic"], r["d"], r["sig"]), world.cost(m, r["text"]), w, ref) for m in present)
        total += best - utility(r["true_quality"], r["world_cost"], w, ref)
    return total / len(records)


# The trainer binary whose `apgr` subcommand scores curves (set by simulate.py from --bin).
TRAIN_BIN = None


def apgr(points, cheap, strong):
    """APGR of (cost, quality) points between the cheapest and strongest single models, as
    `switchyard-train apgr` computes it (the one definition, shared with the evals: the curve
    through the points themselves, anchored at the two models, linear between points)."""
    out = subprocess.run([str(TRAIN_BIN), "apgr"], input=json.dumps({"points": points, "cheap": cheap, "strong": strong}),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["apgr"]


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
        return route(server, world, text, sig, w)["model"]

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
