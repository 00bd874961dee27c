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
across-seeds table of finished runs; `--inspect DIR` shows where a run's scored artifact is
wrong (predicted against true quality per topic, difficulty and model).
Needs `cargo build --workspace --release --bins` (or --bin target/debug after `cargo build --workspace --bins`) and the potion encoder
(scripts/setup.sh). Seeded: the same world and flags give the same prompts and feedback.
The parts live in scripts/simulator/ (worlds, gateway, metrics, training); this file is the
loop and its command line.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from simulator.gateway import Server, config, free_port, http, route, serve_round
from simulator import metrics
from simulator.metrics import curves, oracle_at, regret, sweep, utility
from simulator.training import train_artifact
from simulator.worlds import DEFAULT_PRIOR, ROOT, fresh_test_prompts, knob_weight, load_spec, make_world


def finished_run(run_dir):
    """A finished run's summary, its world (at the run's seed) and its test prompts."""
    summary = json.loads((run_dir / "summary.json").read_text())
    world_path = Path(summary["world"])
    spec = load_spec(world_path if world_path.is_absolute() else ROOT / world_path)
    spec["seed"] = summary["seed"]
    return summary, spec, make_world(spec), fresh_test_prompts(spec)


def serve_models(args, world, spec, out):
    """A server on the artifact in `out/models`, without exploration, logging into `out`."""
    port = free_port()
    (out / "serve.toml").write_text(config(world, spec["knob"], 0.0, out / "models", out / "serve-logs", port))
    return Server(Path(args.bin) / "switchyard", out / "serve.toml", port, out / "server.log")


def refit(args, run_dir):
    """Fixed-data comparison: trains, with this invocation's training options, on the logs a
    finished run's final artifact was trained on (all rounds but the last) and scores its
    cost-quality curve on that run's test prompts, as the run did. Differences between training
    options then show without the loop's feedback (other artifacts route differently, so later
    rounds get other outcomes), which makes seed-to-seed noise several times larger."""
    summary, spec, world, (tests, unseen) = finished_run(run_dir)
    out = Path(args.out) / run_dir.parent.name / run_dir.name
    shutil.rmtree(out, ignore_errors=True)
    (out / "logs").mkdir(parents=True)
    for r in range(len(summary["rounds"]) - 1):
        for f in (run_dir / f"logs-{r}").glob("*.ndjson"):
            os.link(f, out / "logs" / f.name)
    shutil.copy(run_dir / "cache.parquet", out / "cache.parquet")
    train_artifact(args, spec, out / "logs", out, "train.log")
    server = serve_models(args, world, spec, out)
    try:
        learned, oracle, _, _, _ = curves(server, world, tests)
        unseen_learned = curves(server, world, unseen)[0] if unseen else None
    finally:
        server.stop()
    before = summary["apgr"]["oracle"] - summary["apgr"]["learned"]
    also = f"; held-out subjects: learned {unseen_learned:.3f} (the run's own artifact: {summary['apgr']['unseen_subjects']['learned']:.3f})" if unseen else ""
    print(f"{run_dir}: APGR learned {learned:.3f}, oracle {oracle:.3f}, gap {oracle - learned:.3f} (the run's own artifact: {before:.3f}){also}", flush=True)
    return {"learned": learned, "gap": oracle - learned, "own_gap": before, "unseen": unseen_learned, "own_unseen": summary["apgr"]["unseen_subjects"]["learned"] if unseen else None}


def inspect(args, run_dir):
    """Where a finished run's scored artifact (the one that served its last round) is wrong: per
    topic, difficulty third and model, its mean predicted quality on the run's test prompts
    against the true one, with the standard error, the discount and the evidence behind it."""
    summary, spec, world, (tests, _) = finished_run(run_dir)
    log = run_dir / f"train-{len(summary['rounds']) - 2}.log"
    artifact = Path(log.read_text().splitlines()[0].strip())
    out = Path(args.out) / "inspect" / run_dir.name
    shutil.rmtree(out, ignore_errors=True)
    (out / "models").mkdir(parents=True)
    shutil.copytree(artifact if artifact.is_absolute() else ROOT / artifact, out / "models" / artifact.name)
    (out / "models" / "LATEST").write_text(artifact.name)
    server = serve_models(args, world, spec, out)
    cells = {}
    w = knob_weight(spec["knob"])
    try:
        for text, topic, d, sig in tests:
            v = route(server, world, text, sig, w)
            third = "" if "replay" in spec else f" {min(2, int(d * 3)) + 1}/3"
            for c in v["routing"]["candidates"]:
                row = (c["predicted_quality"], world.quality(c["model"], topic, d, sig), c.get("standard_error", 0.0), c.get("penalty", 0.0), c.get("evidence", 0.0), c["model"] == v["model"])
                cells.setdefault((world.topics[topic]["name"] + third, c["model"]), []).append(row)
    finally:
        server.stop()
    print(f"{run_dir}: artifact {artifact.name} (served round {len(summary['rounds']) - 1}) on {len(tests)} test prompts at cost weight {w}")
    print("| topic, difficulty | model | predicted | true | error | standard error | discount | evidence | chosen |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (cell, model), rows in sorted(cells.items()):
        mean = lambda i: sum(r[i] for r in rows) / len(rows)
        print(f"| {cell} | {model} | {mean(0):.3f} | {mean(1):.3f} | {mean(0) - mean(1):+.3f} | {mean(2):.3f} | {mean(3):.3f} | {mean(4):.1f} | {100 * mean(5):.0f} % of {len(rows)} |")


def run(args, seed=None):
    spec = load_spec(args.world)
    if args.rounds is not None:
        spec["rounds"] = args.rounds
    if seed is not None:
        spec["seed"] = seed
    if args.requests is not None:
        spec["requests_per_round"] = args.requests
    explore = spec["explore"] if args.explore is None else args.explore
    onboard = spec["onboard"] if args.onboard is None else args.onboard
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
    print(f"world {args.world}: {len(world.ids)} models, {len(world.topics)} topics, knob {knob} (cost weight {w_knob}), explore {explore}, onboard {onboard}, {spec['rounds']} rounds of {spec['requests_per_round']} requests")
    for m in world.models:
        if m.get("from_round", 0) > 0 and "prior" not in m:
            print(f"{m['id']} joins in round {m['from_round']} without a prior in the world file: configured at quality {DEFAULT_PRIOR} until it has data")
    print("| round | serving | mean true quality | $ per 1k | regret vs oracle | traffic share | explored (of it onboarding) | mean feedback | OPE of this artifact (DR, 95 %) | its feedback online (not explored) | their true quality | OPE within interval (feedback / true) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    pending_ope = None
    for round_no in range(spec["rounds"]):
        logs = out / f"logs-{round_no}"
        port = free_port()
        cfg = out / f"round-{round_no}.toml"
        cfg.write_text(config(world, knob, explore, out / "models", logs, port, round_no, onboard))
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
            recs = serve_round(server, world, round_no, prompts, serving)
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
            "onboarded": sum(r["onboarding"] for r in recs) / n,
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
              + f" | {row['explored']*100:.1f}% ({row['onboarded']*100:.1f}% onboarding) | {observed:.3f} | {ope_cell} | {observed_exploit:.3f} | {value_exploit:.3f} | {within} |", flush=True)
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
    summary = {"world": args.world, "seed": spec["seed"], "explore": explore, "onboard": onboard, "best_single": {"model": best_single[0], "quality": best_single[1][1], "cost_per_1k": 1000 * best_single[1][0]}, "oracle_at_knob": {"quality": at_knob[1], "cost_per_1k": 1000 * at_knob[0]}, "rounds": rows, "apgr": {"learned": learned_apgr, "oracle": oracle_apgr, "visible_oracle": visible_apgr, **({"unseen_subjects": {"learned": unseen_curves[0], "oracle": unseen_curves[1], "visible_oracle": unseen_curves[2]}} if unseen_curves else {})}, "singles": singles, "learned_at_knob": greedy, "learned_curve": [{"cost_weight": w, "cost_per_1k": 1000 * c, "quality": q} for w, (c, q) in zip(sweep(spec), learned_points)], "oracle_curve": [{"cost_weight": w, "cost_per_1k": 1000 * c, "quality": q} for w in sweep(spec) for c, q in [oracle_at(world, tests, w)]]}
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
    p.add_argument("--inspect", metavar="DIR", help="run no loop: per topic, difficulty and model, the predicted against the true quality of a finished run's scored artifact (DIR, one seed's run)")
    p.add_argument("--refit", nargs="+", metavar="DIR", help="run no loop: retrain each finished run (DIR, or DIR/seed-*) on the logs its final artifact was trained on, with this invocation's training options, and score it on the run's test prompts (into OUT/...)")
    p.add_argument("--explore", type=float, default=None, help="override the world's exploration share")
    p.add_argument("--onboard", type=float, default=None, help="override the world's onboarding share (exploration of models with few outcomes)")
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
    # Curves are scored by the trainer's `apgr` (the one definition).
    metrics.TRAIN_BIN = Path(args.bin) / "switchyard-train"
    if args.summarise:
        files = sorted((f for d in args.summarise for f in Path(d).glob("seed-*/summary.json")), key=lambda f: (str(f.parent.parent), int(f.parent.name[5:])))
        if not files:
            raise SystemExit(f"no seed-*/summary.json under {' '.join(args.summarise)}")
        across([json.loads(f.read_text()) for f in files])
        return
    if args.inspect:
        inspect(args, Path(args.inspect))
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
