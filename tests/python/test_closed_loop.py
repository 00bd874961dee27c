"""The closed loop end to end: `scripts/simulate.py` serves rounds of prompts through the
real server (cold start, then `auto` with exploration), posts simulated feedback, trains on the
logs (`switchyard-train all --src none --features emotion`), estimates each new artifact
off-policy (cross-fitted) and lets the server hot-reload it. Seeded, so the assertions are about
this run's numbers, with margins."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from simulator import gateway, worlds  # noqa: E402  (scripts/ is not a package path)
BIN_DIR = Path(os.environ.get("SWITCHYARD_BIN", ROOT / "target" / "debug" / "switchyard")).resolve().parent


def simulate(out, *extra):
    """The default world (seed 11, 4 rounds of 600 requests, about 20 s)."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "simulate.py"), "--bin", str(BIN_DIR), "--out", str(out), *extra],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=600,
    )
    return json.loads((out / "summary.json").read_text()), out


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("explore") / "sim")


@pytest.fixture(scope="module")
def greedy(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("greedy") / "sim", "--explore", "0", "--onboard", "0")


def test_loop_learns_explores_and_estimates_off_policy(explored):
    s, out = explored
    rounds = s["rounds"]
    assert [r["serving"] for r in rounds] == ["router/coldstart", "auto", "auto", "auto"]
    # Exploration serves non-top candidates at about the configured share (0.1), and onboarding
    # (0.1 more) the medium model while the artifact has fewer than 100 outcomes of it: in
    # round 1 (on its prior) and round 2, not round 3.
    assert all(0.03 < r["explored"] - r["onboarded"] < 0.12 for r in rounds[1:]), rounds
    assert [r["onboarded"] > 0.05 for r in rounds[1:]] == [True, True, False], rounds
    # The mid-priced model, added after the cold start on a pessimistic prior, gets traffic.
    assert rounds[-1]["share"]["sim/medium"] > 0.05, rounds[-1]
    # Learning pays: the last round's true quality is well above the uniform cold start's,
    # and the policy at the knob is cheaper than the best single model.
    assert rounds[-1]["true_quality"] > rounds[0]["true_quality"] + 0.08, rounds
    policy_cost, policy_quality = s["learned_at_knob"]
    assert policy_quality > rounds[0]["true_quality"] + 0.08
    assert 1000 * policy_cost < s["best_single"]["cost_per_1k"]
    assert s["apgr"]["learned"] > 0.5, s["apgr"]
    # Off-policy estimates: each auto round after the first says what the artifact that served
    # it was estimated at (a value with an interval, or why there is none); cross-fitted twins.
    for r in rounds[2:]:
        # A number with its interval (the loop's rounds have the labels for one).
        value, (lo, hi) = r["ope"]["value"], r["ope"]["ci95"]
        assert 0.0 <= value <= 1.0 and lo <= hi and hi - lo < 0.5, r
        # Judged against the feedback observed online and against what it estimates, the
        # true quality of those decisions.
        assert 0.5 < r["true_quality_not_explored"] < 1.0 and ("ope_within" in r) == ("ope_within_true" in r), r
    reports = list((out / "ope").glob("ope-*/metrics.json"))
    assert reports and all(json.loads(r.read_text())["cross_fit_folds"] == 5 for r in reports)
    assert all((r.parent / "twins" / "fold-1").is_dir() for r in reports)


def test_without_exploration_the_loop_stalls_on_the_unexplored_model(explored, greedy):
    (explored, _), (greedy, _) = explored, greedy
    assert all(r["explored"] == 0 for r in greedy["rounds"])
    # Tried on its prior once, then judged on what that gave: the medium model fades out and the
    # cost-quality curve stays below the one learned with exploration (on seed 11 by 0.011; lower
    # on each of seeds 11-15, by 0.023 on average: see docs/src/simulator.md).
    share = lambda s: s["rounds"][-1]["share"]["sim/medium"]
    assert share(greedy) < share(explored) / 2, (share(greedy), share(explored))
    assert greedy["apgr"]["learned"] < explored["apgr"]["learned"] - 0.005, (greedy["apgr"], explored["apgr"])


def test_blend_settings_are_flags_recorded_in_the_artifact_and_kept_by_its_twins(explored, tmp_path):
    _, out = explored
    train = BIN_DIR / "switchyard-train"
    common = ["--data", str(out / "outcomes.parquet"), "--cache", str(out / "cache.parquet"), "--features", "emotion"]
    bad = subprocess.run([str(train), "fit", *common, "--out", str(tmp_path / "bad"), "--pessimism=-1"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and "--pessimism must be a number at least 0" in bad.stderr, bad.stderr
    fit = subprocess.run([str(train), "fit", *common, "--out", str(tmp_path / "models"), "--similarity-tau", "0.3", "--pessimism", "1"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    artifact = Path(fit.stdout.strip().splitlines()[-1])
    blend = json.loads((artifact / "weights.json").read_text())["blend"]
    assert (blend["similarity_tau"], blend["pessimism"]) == (0.3, 1.0), blend
    # Cross-fitted OPE trains its twins the way the artifact was trained, these settings too.
    ope = subprocess.run([str(train), "ope", "--logs", str(out / "logs-3"), "--artifact", str(artifact), "--cache", str(out / "cache.parquet"),
                          "--reports", str(tmp_path / "ope"), "--cross-fit", "2", "--bootstrap", "20"], cwd=ROOT, capture_output=True, text=True, check=True)
    twins = list((Path(ope.stdout.strip().splitlines()[-1]) / "twins").glob("fold-*/router-*/weights.json"))
    assert twins and all(json.loads(t.read_text())["blend"] == blend for t in twins), twins


def test_a_finished_run_is_retrained_on_its_own_logs_with_other_settings(explored, tmp_path):
    """`--refit`: the fixed-data comparison. With the run's own settings it rebuilds the run's
    final artifact (same curve, same gap); with other settings it trains with those."""
    _, out = explored

    def refit(dest, *extra):
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / "simulate.py"), "--bin", str(BIN_DIR), "--refit", str(out), "--out", str(dest), *extra],
                           cwd=ROOT, check=True, capture_output=True, text=True, timeout=300)
        line = next(l for l in r.stdout.splitlines() if l.startswith(str(out)))
        gap, own = line.split("gap ")[1].split(" (the run's own artifact: ")
        return float(gap), float(own.rstrip(")"))

    gap, own = refit(tmp_path / "same")
    assert gap == own, (gap, own)
    refit(tmp_path / "other", "--pessimism", "0")
    weights = list((tmp_path / "other").glob("**/models/router-*/weights.json"))
    assert weights and all(json.loads(w.read_text())["blend"]["pessimism"] == 0.0 for w in weights), weights


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("replay") / "sim", "--world", str(ROOT / "sim" / "worlds" / "routellm-replay.json"))


def test_the_loop_learns_real_outcomes_and_generalises_to_prompts_and_subjects_it_never_served(replay):
    """Real outcome data (RouteLLM's GPT-4 / Mixtral correctness on MMLU and GSM8K) served
    through `auto` with the recorded outcome as feedback, retrained and reloaded each round,
    then scored on held-out prompts of the served subjects and on six whole subjects no request
    ever came from (docs/src/simulator.md: Real outcomes, replayed)."""
    s, out = replay

    spec = json.loads((ROOT / "sim" / "worlds" / "routellm-replay.json").read_text())
    tests, unseen = worlds.fresh_test_prompts(spec)
    served = set()
    for f in out.glob("logs-[0-9]*/requests-*.ndjson"):
        served |= {json.loads(line)["prompt"][0]["content"] for line in f.read_text().splitlines()}
    # 2,400 requests, none of them a test prompt or from a held-out subject.
    assert len(served) == 2400 and not served & {t[0] for t in tests + unseen}
    world = worlds.make_world(spec)
    held_out = {world.topics[t[1]]["name"] for t in unseen}
    assert len(held_out) == 6 and not held_out & {world.topics[t[1]]["name"] for t in tests}
    # The artifact knows both models from feedback alone (`--src none`).
    artifact = out / "models" / (out / "models" / "LATEST").read_text().strip()
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert sorted(c["model"] for c in manifest["candidates"]) == ["sim/gpt-4-1106", "sim/mixtral-8x7b"], manifest["candidates"]
    # Better than a random mix of the two (0.5) on held-out prompts of the served subjects, and
    # no worse than it on whole subjects never served: seed 11 gives 0.625 and 0.506 by the one
    # APGR definition (docs/src/metrics.md; the former hull definition gave 0.647 and 0.554, and
    # over ten seeds 0.626 and 0.582, the worst 0.532 and 0.500). Online at the knob it is closer
    # to the oracle than the uniform cold start (regret 0.125 against 0.150).
    assert s["apgr"]["learned"] > 0.6 and s["apgr"]["unseen_subjects"]["learned"] >= 0.5, s["apgr"]
    assert s["rounds"][-1]["regret"] < s["rounds"][0]["regret"] - 0.01, s["rounds"]
    assert all(r["ope"] is not None for r in s["rounds"][2:])


def test_switchyard_train_on_a_log_dir_then_sighup_serves_the_new_artifact_for_any_models(replay, tmp_path):
    """The documented way to retrain from production logs, as is: `switchyard train --logs DIR
    --out DIR` (the public data at its default path, no --map), then SIGHUP, for a config whose
    models are not the embedded config's. The public data would map onto mock models this config
    does not serve, so train leaves it out and says so, and the server takes the new artifact."""
    _, out = replay

    spec = json.loads((ROOT / "sim" / "worlds" / "routellm-replay.json").read_text())
    world = worlds.make_world(spec)
    first = min((out / "models").glob("router-*"), key=lambda p: p.stat().st_mtime)
    models = tmp_path / "models"
    shutil.copytree(first, models / first.name)
    (models / "LATEST").write_text(first.name)
    port = gateway.free_port()
    cfg = tmp_path / "serve.toml"
    cfg.write_text(gateway.config(world, "balanced", 0.0, models, tmp_path / "serve-logs", port).replace("watch = true", "watch = false"))
    server = gateway.Server(BIN_DIR / "switchyard", cfg, port, tmp_path / "server.log")

    def version():
        s, v = gateway.http(server.base, "/v1/route", {"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?\nA. 3\nB. 4\nAnswer:"}]})
        assert s == 200, v
        return v["routing"]["artifact_version"]

    try:
        before = version()
        assert first.name == f"router-{before}"
        train = subprocess.run([str(BIN_DIR / "switchyard"), "train", "--logs", str(out / "logs-all"), "--out", str(models),
                                "--data", str(tmp_path / "outcomes.parquet"), "--cache", str(out / "cache.parquet"), "--audit", str(tmp_path / "audit.md")],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert train.returncode == 0, train.stderr
        assert "the public data in data/routellm is left out" in train.stderr, train.stderr
        new = (models / "LATEST").read_text().strip()
        assert new != first.name
        manifest = json.loads((models / new / "manifest.json").read_text())
        assert sorted(c["model"] for c in manifest["candidates"]) == ["sim/gpt-4-1106", "sim/mixtral-8x7b"]
        server.proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            if version() == new.removeprefix("router-"):
                break
            time.sleep(0.1)
        assert version() == new.removeprefix("router-"), (tmp_path / "server.log").read_text()[-2000:]
    finally:
        server.stop()


def world_file(tmp_path, name, edit):
    """The default world, edited by `edit(spec)`, written to tmp_path/name."""
    spec = json.loads((ROOT / "sim" / "worlds" / "default.json").read_text())
    edit(spec)
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return path


def test_a_world_file_with_a_mistake_is_refused_naming_the_key(tmp_path):
    def run(edit):
        r = subprocess.run([sys.executable, str(ROOT / "scripts" / "simulate.py"), "--bin", str(BIN_DIR), "--world", str(world_file(tmp_path, "bad.json", edit)), "--out", str(tmp_path / "out")],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and not (tmp_path / "out" / "round-0.toml").exists(), r.stdout
        return r.stderr.strip().splitlines()[-1]

    assert run(lambda s: s["topics"][0]["quality"].pop("sim/medium")).endswith("bad.json: topics[0].quality.sim/medium: [base, slope] (numbers)")
    assert run(lambda s: s["models"][0].update(id="small")).endswith("models[0].id: provider/model (letters, digits, - _ .), not 'small'")
    assert run(lambda s: s.update(knob="fast")).endswith("knob: best, balanced, cheap or a cost weight in [0, 1], not 'fast'")
    assert run(lambda s: s.update(explore=0.5, onboard=0.6)).endswith("bad.json: onboard: a share in [0, 1 - explore], not 0.6")
    assert run(lambda s: s["models"][1].update(from_round=9)).endswith("models[1].from_round: a round from 0 to 3")
    assert run(lambda s: s["signal"]["effect"].update(angry={"sim/small": -0.1})).endswith("signal.effect.angry: a value of signal.values, mapping models of the world to a quality change")


def test_a_world_may_use_any_providers_and_add_a_model_later_without_a_prior(tmp_path):
    """Model ids under several provider prefixes, a model joining in round 2 with no prior, a
    knob off the sweep's grid, four difficulty words, and optional keys left out: the model
    joins `auto` only from its round, on the simulator's uninformed prior, and is explored from
    there; the policy at the knob is a point of the swept curve."""
    names = {"sim/small": "openai/small-1", "sim/medium": "acme/medium", "sim/large": "anthropic/large.v2"}

    def edit(s):
        for m in s["models"]:
            m["id"] = names[m["id"]]
        s["models"][1].update(from_round=2)
        del s["models"][1]["prior"]
        for t in s["topics"]:
            t["quality"] = {names[k]: v for k, v in t["quality"].items()}
        s["signal"]["effect"] = {v: {names[k]: x for k, x in e.items()} for v, e in s["signal"]["effect"].items()}
        for k in ("explore", "rounds", "feedback_rate"):
            del s[k]
        # A knob off the sweep's grid, and four difficulty words instead of three.
        s.update(knob=0.15, difficulty_words=[["easy"], ["normal", "standard"], ["hard"], ["brutal", "olympiad-level"]])

    out = tmp_path / "sim"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "simulate.py"), "--bin", str(BIN_DIR), "--world", str(world_file(tmp_path, "late.json", edit)),
                        "--requests", "300", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "acme/medium joins in round 2 without a prior in the world file: configured at quality 0.5" in r.stdout
    s = json.loads((out / "summary.json").read_text())
    share = [r["share"]["acme/medium"] for r in s["rounds"]]
    assert share[0] == share[1] == 0 and share[2] > 0, share
    assert '"acme/medium"' not in (out / "round-1.toml").read_text().split("[auto]")[1]
    assert '"acme/medium" = { quality = 0.5 }' in (out / "round-2.toml").read_text()
    assert s["learned_at_knob"] == next([c["cost_per_1k"] / 1000, c["quality"]] for c in s["learned_curve"] if c["cost_weight"] == 0.15)


def test_a_replay_world_reads_any_outcome_csvs_scores_or_true_false(tmp_path):
    """Outcome data of one's own: one CSV per subject (here directly under `source`), a `prompt`
    column and a column per model with True/False or a score in [0, 1]; a bad value names the
    file, line and column."""

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "law.csv").write_text('prompt,small,big\n"is a verbal contract binding?",0.25,True\nwhat is a tort,1,false\n')
    (tmp_path / "data" / "chat.csv").write_text("prompt,small,big\nhello there,0.9,0.8\n")
    spec = {"replay": {"source": str(tmp_path / "data"), "held_out_subjects": 1, "held_out_rows": 0.5},
            "models": [{"id": "p/small", "column": "small", "input_per_mtok": 1, "output_per_mtok": 1},
                       {"id": "p/big", "column": "big", "input_per_mtok": 5, "output_per_mtok": 5}]}
    (tmp_path / "w.json").write_text(json.dumps(spec))
    world = worlds.make_world(worlds.load_spec(tmp_path / "w.json"))
    assert [t["name"] for t in world.topics] == ["chat", "law"]
    assert [(r["text"], r["outcomes"]) for r in world.rows] == [
        ("hello there", {"p/small": 0.9, "p/big": 0.8}),
        ("is a verbal contract binding?", {"p/small": 0.25, "p/big": 1.0}),
        ("what is a tort", {"p/small": 1.0, "p/big": 0.0}),
    ]
    (tmp_path / "data" / "chat.csv").write_text("prompt,small,big\nhello there,1.5,0.8\n")
    with pytest.raises(SystemExit, match=r"chat.csv:2: small: '1.5' is not True/False or a score in \[0, 1\]"):
        worlds.make_world(worlds.load_spec(tmp_path / "w.json"))


def test_inspect_shows_the_scored_artifacts_predictions_against_the_truth(explored, tmp_path):
    _, out = explored
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "simulate.py"), "--bin", str(BIN_DIR), "--inspect", str(out), "--out", str(tmp_path)],
                       cwd=ROOT, check=True, capture_output=True, text=True, timeout=300)
    # The artifact that served round 3 (the one the curves score), as its decisions name it.
    served = {json.loads(line)["learned"]["artifact_version"] for f in (out / "logs-3").glob("requests-*.ndjson") for line in f.read_text().splitlines()}
    assert len(served) == 1 and f"artifact router-{served.pop()} (served round 3)" in r.stdout, r.stdout
    rows = [l.split(" | ") for l in r.stdout.splitlines() if l.startswith("| ") and "/3 |" in l]
    # 5 topics x 3 difficulty thirds x 3 models, each with a predicted and a true quality.
    assert len(rows) == 45 and {row[1] for row in rows} == {"sim/small", "sim/medium", "sim/large"}, r.stdout
    assert all(0 <= float(row[2]) <= 1 and 0 <= float(row[3]) <= 1 for row in rows)
