"""`auto` from the first request on a user's own models (docs/src/learned-routing.md):

- the embedded default config with provider keys set routes `auto` over the real models those
  keys unlock, with no config edit (the scripted upstream stands in for the providers' hosts
  through OPENAI_BASE_URL / ANTHROPIC_BASE_URL), each candidate on its cited or price-tier prior;
- a config whose `auto` candidates are all models the artifact has never seen serves from their
  priors, onboards them by default, and learns them from feedback (`switchyard train --logs`),
  after which the decisions rest on their own outcomes."""

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import BIN, ROOT, DefaultServer, _start

PROMPTS = [
    "What is the capital of Italy?", "Thanks!", "Prove that there are infinitely many primes.",
    "Write a Python function that reverses a string.", "Translate 'good night' into Spanish.",
    "Explain how a hash map works, with its complexity.", "Hello!", "What is 12 times 12?",
]


def http(url, path, body=None, headers=None):
    req = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def mock_upstream():
    proc, url = _start(["mock-upstream", "--listen", "127.0.0.1:0"], r"listening on (http://\S+)")
    return proc, url


def test_real_keys_route_auto_over_the_real_models_without_a_config_edit(tmp_path):
    mock, url = mock_upstream()
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": url,
           "ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": url}
    server = DefaultServer(tmp_path, env=env)
    try:
        models = http(server.url, "/v1/models")
        auto = next(m for m in models["data"] if m["id"] == "auto")
        cands = {c["model"]: c for c in auto["candidates"]}
        assert set(cands) == {"openai/gpt-4o-mini", "openai/gpt-4o", "openai/gpt-4.1-mini",
                              "anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5"}, cands
        # None has outcomes in the artifact: each is predicted from its prior through the
        # artifact's profile, and says where the prior comes from.
        assert all(c["basis"] == "profile" and c["outcomes"] == 0 for c in cands.values()), cands
        assert cands["openai/gpt-4o-mini"]["prior_source"].startswith("catalog: MMLU 82.0 %")
        assert cands["anthropic/claude-sonnet-4-5"]["prior_source"].startswith("price tier")
        served, onboarded = set(), 0
        for i in range(80):  # a tenth onboarded: none in 80 has probability 0.9^80 < 0.0003
            v = http(server.url, "/v1/chat/completions",
                     {"model": "auto", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]})
            served.add(v["model"])
            learned = v["metadata"]["routing"]
            onboarded += learned["exploration"].get("onboarding", False)
            assert learned["baseline"] in cands
            s = v["metadata"]["savings"]
            assert s["baseline"] == learned["baseline"] and s["baseline_cost_usd"] >= 0
        assert served <= set(cands) and served, served
        # Onboarding is on by default for new candidates: some decisions went to them.
        assert onboarded > 0
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
        assert 'switchyard_auto_cost_usd_total{router="auto",baseline="true"}' in metrics
    finally:
        server.stop()
        mock.kill()


def test_a_config_of_new_models_serves_onboards_and_learns_them(tmp_path):
    mock, url = mock_upstream()
    logs = tmp_path / "logs"
    models = tmp_path / "models"
    models.mkdir()
    latest = (ROOT / "models" / "LATEST").read_text().strip()
    (models / latest).symlink_to(ROOT / "models" / latest)
    (models / "LATEST").write_text(latest)
    config = f"""
[server]
listen = "127.0.0.1:0"
[logging]
dir = "{logs}"
[providers.acme]
kind = "openai"
base_url = "{url}"
[[models]]
id = "acme/small"
upstream = "small"
input_price_per_mtok = 0.1
output_price_per_mtok = 0.4
[[models]]
id = "acme/large"
upstream = "large"
input_price_per_mtok = 2.0
output_price_per_mtok = 8.0
[auto]
artifact = "{models}"
encoder = "{ROOT / 'models' / 'encoder-potion'}"
candidates = ["acme/small", "acme/large"]
watch = false
"""
    server = DefaultServer(tmp_path / "run", config_text=config)
    try:
        ids = []
        for i in range(300):
            v = http(server.url, "/v1/chat/completions",
                     {"model": "auto", "messages": [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} (#{i})"}]})
            learned = v["metadata"]["routing"]
            # Served from priors (no outcome data for either), never refused.
            assert all(c["basis"] in ("profile", "prior") for c in learned["candidates"]), learned
            ids.append((v["metadata"]["request_id"], v["model"]))
        share = sum(m == "acme/large" for _, m in ids) / len(ids)
        assert 0.0 < share < 1.0, share  # onboarding explored the other candidate
        # Feedback: the large model answers well, the small one badly.
        for rid, model in ids:
            http(server.url, "/v1/feedback", {"request_id": rid, "score": 1.0 if model == "acme/large" else 0.0})
        time.sleep(1.0)  # the log writer flushes
        train = subprocess.run([str(Path(BIN).parent / "switchyard"), "train", "--logs", str(logs), "--src", "none",
                                "--out", str(models), "--data", str(tmp_path / "outcomes.parquet"),
                                "--cache", str(tmp_path / "cache.parquet"), "--audit", str(tmp_path / "audit.md")],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert train.returncode == 0, train.stderr
        new = (models / "LATEST").read_text().strip()
        manifest = json.loads((models / new / "manifest.json").read_text())
        assert sorted(c["model"] for c in manifest["candidates"]) == ["acme/large", "acme/small"]
        server.proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            # A prompt like the served ones (familiar: decided by the predictions, not the
            # unfamiliar-prompt policy).
            d = http(server.url, "/v1/route", {"model": "auto:best", "messages": [{"role": "user", "content": f"{PROMPTS[5]} (#5)"}]})
            if d["routing"]["artifact_version"] == new.removeprefix("router-"):
                break
            time.sleep(0.1)
        basis = {c["model"]: c["basis"] for c in d["routing"]["candidates"]}
        assert basis == {"acme/small": "data", "acme/large": "data"}, d
        # What it learned: at the quality end the large model wins.
        scored = [(c["model"], c["predicted_quality"], c["penalty"], c["score"], c["neighbours"]) for c in d["routing"]["candidates"]]
        assert not d["routing"]["unfamiliar"], d["routing"]["support"]
        assert d["routing"]["chosen"] == "acme/large", scored
    finally:
        server.stop()
        mock.kill()
