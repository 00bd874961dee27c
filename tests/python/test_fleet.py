"""Replicas sharing a real PostgreSQL and a real Redis (started by scripts/setup_services.sh):
feedback posted to one replica for a request another served, a rate limit that holds across
two replicas, revocation reaching every replica within its bound, budgets, metadata and model
policy of virtual keys, Redis down (fail open / closed), spend, and what a SIGKILL loses."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import openai
import pytest
from openai import OpenAI

from conftest import BIN, _start, render_config

PG = os.environ.get("SWITCHYARD_TEST_POSTGRES", "postgres://switchyard:switchyard@127.0.0.1:5432")
REDIS = os.environ.get("SWITCHYARD_TEST_REDIS", "redis://127.0.0.1:6379")


def psql(db, sql):
    out = subprocess.run(["psql", f"{PG}/{db}", "-qAtc", sql], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


class Fleet:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.db = "sy_" + uuid.uuid4().hex[:12]
        psql("postgres", f"CREATE DATABASE {self.db}")
        self.prefix = f"test-{uuid.uuid4().hex[:8]}:"
        self.mock, self.mock_url = _start(["mock-upstream", "--listen", "127.0.0.1:0"], r"listening on (http://\S+)")
        self.procs = []
        self.env = dict(os.environ, TEST_UPSTREAM_KEY="k", SY_PG=f"{PG}/{self.db}", SY_REDIS=REDIS)

    def config(self, name, store_extra='flush = "100ms"\n', redis=True):
        store = f'[store]\npostgres_env = "SY_PG"\nredis_prefix = "{self.prefix}"\nkeys_refresh = "200ms"\n'
        if redis:
            store += 'redis_env = "SY_REDIS"\n'
        path = self.tmp / f"{name}.toml"
        path.write_text(render_config(self.mock_url, str(self.tmp / f"logs-{name}"), 'api_keys = ["rk-fleet"]')
                        + "\n" + store + store_extra)
        return path

    def replica(self, name, store_extra='flush = "100ms"\n', env=None, redis=True):
        cfg = self.config(name, store_extra, redis)
        proc = subprocess.Popen([BIN, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                stderr=open(self.tmp / f"{name}.err", "w"), text=True, env=dict(self.env, **(env or {})))
        line = proc.stdout.readline()
        m = re.search(r"listening on (http://\S+?) ", line)
        assert m, f"replica {name} did not start: {line!r} {(self.tmp / f'{name}.err').read_text()}"
        self.procs.append(proc)
        return m.group(1)

    def cli(self, *args, env=None):
        out = subprocess.run([BIN, *args, "--config", str(self.config("cli"))], capture_output=True, text=True,
                             env=dict(self.env, **(env or {})))
        assert out.returncode == 0, out.stderr
        return out.stdout

    def create_key(self, *args):
        out = self.cli("keys", "create", "--name", "test", *args)
        secret = out.strip().splitlines()[-1].split()[-1]
        key_id = json.loads(out[: out.rindex("}") + 1])["id"]
        return key_id, secret

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=20)
        self.mock.kill()
        self.mock.wait()
        psql("postgres", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")


@pytest.fixture
def fleet(tmp_path):
    f = Fleet(tmp_path)
    yield f
    f.close()


def client(url, key="unused"):
    return OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def chat(url, key, model="up/ok"):
    return client(url, key).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def accepted(url, key):
    """One request with the key; False while the replica has not loaded it yet."""
    try:
        chat(url, key)
        return True
    except openai.AuthenticationError:
        return False


def wait_for(check, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_feedback_to_another_replica_is_accepted_and_exported_joined(fleet, tmp_path):
    a, b = fleet.replica("a"), fleet.replica("b")
    r = chat(a, "rk-fleet")
    rid = r.metadata["request_id"]
    # B never saw the request: it finds it in the shared store once A's writer flushed it.
    assert wait_for(lambda: psql(fleet.db, f"SELECT count(*) FROM requests WHERE request_id = '{rid}'") == "1")
    req = urllib.request.Request(b + "/v1/feedback", data=json.dumps({"request_id": rid, "score": 0.9}).encode(),
                                 headers={"content-type": "application/json", "authorization": "Bearer rk-fleet"})
    with urllib.request.urlopen(req) as resp:
        assert json.load(resp)["model"] == "up/ok"
    out = tmp_path / "export"
    fleet.cli("export", "--out", str(out))
    requests = [json.loads(l) for l in (out / "requests-store.ndjson").read_text().splitlines()]
    feedback = [json.loads(l) for l in (out / "feedback-store.ndjson").read_text().splitlines()]
    assert [x["request_id"] for x in requests] == [rid]
    assert [(f["request_id"], f["score"], f["model"]) for f in feedback] == [(rid, 0.9, "up/ok")]
    # Unknown everywhere: still a 404.
    bad = urllib.request.Request(b + "/v1/feedback", data=json.dumps({"request_id": "nope", "score": 1}).encode(),
                                 headers={"content-type": "application/json", "authorization": "Bearer rk-fleet"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad)
    assert e.value.code == 404


def test_a_rate_limit_holds_across_two_replicas(fleet):
    a, b = fleet.replica("a"), fleet.replica("b")
    _, key = fleet.create_key("--rpm", "10")
    # The window is the UTC minute: the check below and the 15 requests all fall early in one.
    if time.time() % 60 > 40:
        time.sleep(61 - time.time() % 60)
    assert wait_for(lambda: accepted(a, key))  # the replicas loaded the key (1 request counted)
    results = []
    for i in range(15):
        try:
            chat((a, b)[i % 2], key)
            results.append(200)
        except openai.RateLimitError as e:
            results.append(429)
            assert 0 < int(e.response.headers["retry-after"]) <= 60
            assert "requests per minute" in e.body["message"]
    # one request was spent above on checking the key was loaded
    assert results.count(200) == 9 and results.count(429) == 6, results


def test_revocation_reaches_the_other_replica_within_a_second(fleet):
    a, b = fleet.replica("a"), fleet.replica("b")
    key_id, key = fleet.create_key()
    assert wait_for(lambda: accepted(b, key))
    fleet.cli("keys", "revoke", key_id)
    revoked = time.time()

    def refused():
        try:
            chat(b, key)
            return False
        except openai.AuthenticationError:
            return True

    assert wait_for(refused, timeout=1.0), "B still accepts the key 1 s after revocation"
    assert time.time() - revoked < 1.0
    with pytest.raises(openai.AuthenticationError):
        chat(a, key)


def test_key_policy_budget_metadata_and_spend(fleet):
    a = fleet.replica("a")
    _, key = fleet.create_key("--models", "up/ok,router/ab", "--metadata", "team=ml,plan=free")
    assert wait_for(lambda: accepted(a, key))
    # The key's metadata reaches CEL: router/ab sends plan == "free" to its `free` route.
    r = client(a, key).chat.completions.create(model="router/ab", messages=[{"role": "user", "content": "x"}])
    assert r.metadata["routing"]["route"] == "free"
    with pytest.raises(openai.PermissionDeniedError) as e:
        chat(a, key, model="up/second")
    assert "may not use" in e.value.body["message"]
    # A budget of $0.000015 a day: the first request's estimate (its prompt) fits, its real
    # cost (prompt and answer, charged when it finished) does not leave room for another.
    _, small = fleet.create_key("--budget-day", "0.000015")
    assert wait_for(lambda: accepted(a, small))

    def over_budget():
        try:
            chat(a, small)
            return False
        except openai.RateLimitError as e:
            return "daily budget" in e.body["message"] and int(e.response.headers["retry-after"]) > 0

    assert wait_for(over_budget)
    with urllib.request.urlopen(urllib.request.Request(a + "/v1/spend?by=team&window=1d",
                                                       headers={"authorization": f"Bearer {key}"})) as resp:
        rows = json.load(resp)["rows"]
    ml = next(r for r in rows if r["team"] == "ml")
    assert ml["requests"] >= 2 and ml["cost_usd"] > 0
    assert "ml" in fleet.cli("spend", "--by", "team", "--since", "1d")


def test_redis_down_fails_open_or_closed_per_key_and_is_counted(fleet, tmp_path):
    port = 16000 + os.getpid() % 1000
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0)
        a = fleet.replica("a", env={"SY_REDIS": f"redis://127.0.0.1:{port}"})
        _, open_key = fleet.create_key("--rpm", "100")
        _, closed_key = fleet.create_key("--rpm", "100", "--on-redis-error", "closed")
        assert wait_for(lambda: accepted(a, open_key))
        chat(a, closed_key)
    finally:
        redis.kill()
        redis.wait()
    chat(a, open_key)  # fails open: admitted
    with pytest.raises(openai.InternalServerError) as e:
        chat(a, closed_key)
    assert e.value.status_code == 503 and "fails closed" in e.value.body["message"]
    with urllib.request.urlopen(urllib.request.Request(a + "/metrics", headers={"authorization": f"Bearer {open_key}"})) as m:
        text = m.read().decode()
    assert 'switchyard_limit_redis_errors_total{decision="admitted"}' in text
    assert re.search(r'switchyard_limit_redis_errors_total\{decision="refused"\} [1-9]', text)


def test_sigkill_loses_at_most_the_queued_batch(fleet):
    # Batches of 20 written only when full (a long flush): 50 requests leave 10 queued.
    url = fleet.replica("k", store_extra='batch = 20\nflush = "60s"\n', redis=False)
    proc = fleet.procs[-1]
    for _ in range(50):
        chat(url, "rk-fleet")

    def metric(prefix):
        with urllib.request.urlopen(urllib.request.Request(url + "/metrics", headers={"authorization": "Bearer rk-fleet"})) as m:
            return [l for l in m.read().decode().splitlines() if l.startswith(prefix)]

    assert wait_for(lambda: metric('switchyard_store_records_total{outcome="written"} 40'))
    assert metric("switchyard_store_queue ") == ["switchyard_store_queue 10"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert psql(fleet.db, "SELECT count(*) FROM requests") == "40"


def test_analytics_on_any_replica_show_the_whole_fleet(fleet):
    a, b = fleet.replica("a"), fleet.replica("b")
    for _ in range(2):
        chat(a, "rk-fleet")
    served_by_b = [chat(b, "rk-fleet").metadata["request_id"] for _ in range(3)]

    def get(url, path):
        req = urllib.request.Request(url + path, headers={"authorization": "Bearer rk-fleet"})
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    assert wait_for(lambda: get(a, "/v1/analytics/traffic?window=1h")["totals"]["requests"] == 5)
    assert get(b, "/v1/analytics/traffic?window=1h")["totals"]["requests"] == 5
    drill = get(a, f"/v1/analytics/requests/{served_by_b[0]}")
    assert drill["record"]["request_id"] == served_by_b[0] and drill["record"]["model"] == "up/ok"
