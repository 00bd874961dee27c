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
from pathlib import Path

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

    def config(self, name, store_extra='flush = "100ms"\n', redis=True, max_body_bytes=65536):
        store = f'[store]\npostgres_env = "SY_PG"\nredis_prefix = "{self.prefix}"\nkeys_refresh = "200ms"\n'
        if redis:
            store += 'redis_env = "SY_REDIS"\n'
        path = self.tmp / f"{name}.toml"
        text = render_config(self.mock_url, str(self.tmp / f"logs-{name}"), 'api_keys = ["rk-fleet"]')
        text = text.replace("max_body_bytes = 65536", f"max_body_bytes = {max_body_bytes}")
        path.write_text(text + "\n" + store + store_extra)
        return path

    def replica(self, name, store_extra='flush = "100ms"\n', env=None, redis=True, max_body_bytes=65536):
        cfg = self.config(name, store_extra, redis, max_body_bytes)
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

    def create_key(self, *args, env=None):
        out = self.cli("keys", "create", "--name", "test", *args, env=env)
        secret = out.strip().splitlines()[-1].split()[-1]
        key_id = json.loads(out[: out.rindex("}") + 1])["id"]
        return key_id, secret

    def create_key_in(self, pg_url, *args):
        """A key in another PostgreSQL than the fleet's."""
        return self.create_key(*args, env={"SY_PG": pg_url})

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
    """One request with the key; False while the replica has not loaded it yet (a key whose
    limits refuse the request is loaded)."""
    try:
        chat(url, key)
        return True
    except openai.RateLimitError:
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
    # A budget of $0.000015 a day: without max_tokens a request reserves its worst case (the
    # model's max_output_tokens), which does not fit, and the refusal says so.
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


# --- tenant walls, budgets under concurrency, stores that come back (one test per row of the
# adversarial run that found them) ---

PRICEY = """
[[models]]
id = "up/pricey"
upstream = "ok"
input_price_per_mtok = 0.0
output_price_per_mtok = 1000.0
"""


def get_json(url, path, key):
    req = urllib.request.Request(url + path, headers={"authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def status_of(url, path, key, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, headers={"authorization": f"Bearer {key}",
                                                                  "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def post_feedback(url, key, body):
    return status_of(url, "/v1/feedback", key, body)


def test_a_team_sees_only_its_own_requests_spend_and_feedback(fleet):
    a, b = fleet.replica("a"), fleet.replica("b")
    _, key_a = fleet.create_key("--team", "alpha")
    _, key_b = fleet.create_key("--team", "beta")
    _, key_a2 = fleet.create_key("--metadata", "team=alpha")  # the team from metadata
    # One wait per key, so that each key makes exactly one request here (a refused try is a
    # 401 of no key).
    for url, key in ((a, key_a), (b, key_b), (b, key_a2)):
        assert wait_for(lambda: accepted(url, key))
    secret = "alpha's private plan"
    r = client(a, key_a).chat.completions.create(model="up/ok", user="alice",
                                                 messages=[{"role": "user", "content": secret}])
    rid_a = r.metadata["request_id"]
    rid_b = chat(b, key_b).metadata["request_id"]
    assert wait_for(lambda: psql(fleet.db, "SELECT count(*) FROM requests WHERE key_id IS NOT NULL") == "5")

    def ids(url, key):
        return {x["request_id"] for x in get_json(url, "/v1/analytics/requests?window=1h&limit=100", key)["requests"]}

    # B, through either replica: only beta's request; A's id is unknown to it.
    for url in (a, b):
        seen = ids(url, key_b)
        assert rid_b in seen and rid_a not in seen, seen
        assert status_of(url, f"/v1/analytics/requests/{rid_a}", key_b)[0] == 404
        filters = get_json(url, "/v1/analytics/filters", key_b)
        assert "alice" not in json.dumps(filters) and filters["rows"] == 2, filters
        traffic = get_json(url, "/v1/analytics/traffic?window=1h", key_b)
        assert traffic["totals"]["requests"] == 2
    # A's team (both of its keys) sees its own request with the prompt; the admin sees all.
    drill = get_json(b, f"/v1/analytics/requests/{rid_a}", key_a2)
    assert secret in json.dumps(drill["record"]["prompt"]) and drill["record"]["team"] == "alpha"
    assert {rid_a, rid_b} <= ids(a, "rk-fleet")
    # Spend: B's rows only, by key and by team; the admin sees both teams.
    for by in ("key", "team"):
        rows = get_json(a, f"/v1/spend?by={by}&window=1d", key_b)["rows"]
        assert [r["requests"] for r in rows] == [2] and "alpha" not in json.dumps(rows), rows
    teams = {r["team"] for r in get_json(a, "/v1/spend?by=team&window=1d", "rk-fleet")["rows"]}
    assert {"alpha", "beta"} <= teams
    # Feedback: B may not rate A's request (answered like an unknown id), A may; the store
    # records which key gave it.
    code, body = post_feedback(b, key_b, {"request_id": rid_a, "score": 0.0})
    assert code == 404 and "of this key" in body["error"]["message"]
    code, _ = post_feedback(b, key_a, {"request_id": rid_a, "score": 0.75})
    assert code == 200
    assert psql(fleet.db, f"SELECT key_id IS NOT NULL, score FROM feedback WHERE request_id = '{rid_a}'") == "t|0.75"
    # A request refused before any upstream is logged with its key: its team sees it, no other.
    with pytest.raises(openai.APIStatusError):
        chat(b, key_b, model="up/no-such-model")
    assert wait_for(lambda: get_json(a, "/v1/analytics/traffic?window=1h", key_b)["totals"]["requests"] == 3)
    assert get_json(a, "/v1/analytics/traffic?window=1h", key_a)["totals"]["requests"] == 3


def test_feedback_cannot_forge_the_judge_and_keeps_any_source(fleet):
    a = fleet.replica("a")
    _, key = fleet.create_key("--team", "alpha")
    assert wait_for(lambda: accepted(a, key))
    rid = chat(a, key).metadata["request_id"]
    for giver in (key, "rk-fleet"):
        for source in ("judge", "judge-pairwise"):
            code, body = post_feedback(a, giver, {"request_id": rid, "score": 1.0, "source": source})
            assert code == 403 and body["error"]["param"] == "source", body
    odd = 'app "beta"\n<b>'
    assert wait_for(lambda: psql(fleet.db, f"SELECT count(*) FROM requests WHERE request_id = '{rid}'") == "1")
    code, _ = post_feedback(a, key, {"request_id": rid, "score": 0.25, "source": odd, "comment": 'said "meh"'})
    assert code == 200
    drill = get_json(a, f"/v1/analytics/requests/{rid}", key)
    assert {"source": odd, "score": 0.25} in drill["feedback"], drill["feedback"]
    assert psql(fleet.db, f"SELECT source, comment FROM feedback WHERE request_id = '{rid}'") == f'{odd}|said "meh"'


def spend_of(fleet, key_id):
    return float(psql(fleet.db, f"SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE key_id = '{key_id}'"))


def concurrently(n, call):
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        try:
            call(i)
            return 200
        except openai.RateLimitError:
            return 429

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.parametrize("stream", [False, True])
def test_fifty_concurrent_requests_over_two_replicas_stay_within_a_budget(fleet, stream):
    a, b = fleet.replica("a", store_extra='flush = "100ms"\n' + PRICEY), fleet.replica("b", store_extra='flush = "100ms"\n' + PRICEY)
    key_id, key = fleet.create_key("--budget-day", "0.01")
    assert wait_for(lambda: accepted(a, key) and accepted(b, key))  # up/ok: $0.000015 each

    def call(i):
        # 5 answer tokens at $1000 per million: $0.005 each, and so is the reservation
        c = client((a, b)[i % 2], key).chat.completions.create(
            model="up/pricey", max_tokens=5, stream=stream, messages=[{"role": "user", "content": "hi"}])
        if stream:
            for _ in c:
                pass

    before = spend_of(fleet, key_id)
    results = concurrently(50, call)
    assert wait_for(lambda: psql(fleet.db, "SELECT count(*) FROM requests WHERE model = 'up/pricey'") == str(results.count(200)))
    spent = spend_of(fleet, key_id) - before
    print(f"stream={stream}: {results.count(200)} of 50 admitted, ${spent:.6f} spent on the $0.01 budget"
          f" (${before:.6f} before)")
    assert 1 <= results.count(200) <= 2, results
    # The bound: at most the budget (each request settled at or under what it reserved).
    assert spent <= 0.01 - before + 1e-9, spent
    # Without max_tokens the worst case is the model's max_output_tokens: refused, and told why.
    with pytest.raises(openai.RateLimitError) as e:
        client(a, key).chat.completions.create(model="up/pricey", messages=[{"role": "user", "content": "hi"}])
    assert "max_tokens" in e.value.body["message"]


def private_postgres(tmp_path):
    """A PostgreSQL cluster of the test's own (it is stopped and started): returns its URL and
    `ctl("start" | "stop" | "remove")`."""
    import glob
    import shutil

    import tempfile

    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    # Its own folder under /tmp: as root, initdb runs as the postgres user, which cannot enter
    # pytest's private temporary folders.
    data = Path(tempfile.mkdtemp(prefix="sy-pg-"))
    as_pg = [] if os.getuid() != 0 else ["runuser", "-u", "postgres", "--"]
    if os.getuid() == 0:
        shutil.chown(data, "postgres")
    port = 17000 + os.getpid() % 1000
    out = subprocess.run(as_pg + [f"{bindir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

    def ctl(action):
        args = [f"{bindir}/pg_ctl", "-D", str(data), "-w", "-l", str(data / "log"), action]
        if action == "start":
            args += ["-o", f"-p {port} -k /tmp -c listen_addresses=127.0.0.1"]
        if action == "stop":
            args += ["-m", "fast"]
        if action == "remove":
            shutil.rmtree(data, ignore_errors=True)
            return
        subprocess.run(as_pg + args, check=True, capture_output=True)

    ctl("start")
    return f"postgres://postgres@127.0.0.1:{port}/postgres", ctl


def test_replicas_come_back_after_postgres_restarts_and_lose_no_record(fleet, tmp_path):
    url, ctl = private_postgres(tmp_path)
    try:
        env = {"SY_PG": url}
        extra = 'flush = "100ms"\nkeys_max_staleness = "3s"\n'
        a, b = fleet.replica("a", extra, env=env, redis=False), fleet.replica("b", extra, env=env, redis=False)
        key_id, key = fleet.create_key_in(url)
        assert wait_for(lambda: accepted(a, key) and accepted(b, key))
        served = 0  # requests of the router key
        ctl("stop")
        stopped = time.time()
        # 9 s down, 20 requests a second: all served from the upstream (router key)...
        while time.time() - stopped < 9:
            chat((a, b)[served % 2], "rk-fleet")
            served += 1
            time.sleep(0.05)
        # ...and the health endpoint says so; virtual keys fail closed past keys_max_staleness.
        health = get_json(a, "/healthz", "rk-fleet")
        assert health["status"] == "degraded" and health["store"]["postgres"]["up"] is False
        with pytest.raises(openai.InternalServerError) as e:
            chat(a, key)
        assert e.value.status_code == 503 and "keys_max_staleness" in e.value.body["message"]
        ctl("start")
        restarted = time.time()
        assert wait_for(lambda: all(get_json(u, "/healthz", "rk-fleet")["status"] == "ok" for u in (a, b)), timeout=10)
        recovered = time.time() - restarted
        assert recovered < 5, recovered
        # Every record the outage held back is written from the spool.
        import hashlib

        router_key = "key-" + hashlib.sha256(b"rk-fleet").hexdigest()[:8]
        count = lambda: subprocess.run(["psql", url, "-qAtc", f"SELECT count(*) FROM requests WHERE key_id = '{router_key}'"],
                                       capture_output=True, text=True).stdout.strip()
        assert wait_for(lambda: count() == str(served), timeout=10), (count(), served)
        traffic = get_json(b, f"/v1/analytics/traffic?window=1h&key={router_key}", "rk-fleet")
        assert traffic["totals"]["requests"] == served
        # A key revoked after the outage is refused by both replicas within a second.
        assert wait_for(lambda: accepted(a, key) and accepted(b, key))
        fleet.cli("keys", "revoke", key_id, env=env)
        for u in (a, b):
            def refused():
                try:
                    chat(u, key)
                    return False
                except openai.AuthenticationError:
                    return True
            assert wait_for(refused, timeout=1.5)
        print(f"recovered in {recovered:.2f} s; {served} records, none lost")
    finally:
        for p in fleet.procs:
            p.kill()
        fleet.procs.clear()
        ctl("stop")
        ctl("remove")


def test_redis_restart_keeps_a_spent_budget_spent_and_decisions_stay_fast(fleet):
    port = 16500 + os.getpid() % 500
    start = lambda: subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
    ping = lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0
    redis = start()
    try:
        assert wait_for(ping)
        a = fleet.replica("a", 'flush = "100ms"\n' + PRICEY, env={"SY_REDIS": f"redis://127.0.0.1:{port}"})
        key_id, key = fleet.create_key("--budget-day", "0.009")
        _, open_key = fleet.create_key("--rpm", "1000")
        assert wait_for(lambda: accepted(a, key))
        client(a, key).chat.completions.create(model="up/pricey", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.RateLimitError):
            client(a, key).chat.completions.create(model="up/pricey", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        assert wait_for(lambda: spend_of(fleet, key_id) > 0.005)
        redis.kill()
        redis.wait()
        # Redis down: a decision within the bounded wait (fails open), never a stall.
        t = time.time()
        chat(a, open_key)
        assert time.time() - t < 1.0
        redis = start()
        assert wait_for(ping)
        # Redis came back empty: the spent budget is rebuilt from PostgreSQL's spend.
        def refused():
            try:
                client(a, key).chat.completions.create(model="up/pricey", max_tokens=5,
                                                       messages=[{"role": "user", "content": "x"}])
                return False
            except openai.RateLimitError as e:
                return "daily budget" in e.body["message"]
        assert wait_for(refused, timeout=5)
        assert spend_of(fleet, key_id) <= 0.009
    finally:
        redis.kill()
        redis.wait()


def test_four_replicas_start_at_once_on_an_empty_database_ten_times(fleet):
    for _ in range(10):
        fleet.db = "sy_" + uuid.uuid4().hex[:12]
        psql("postgres", f"CREATE DATABASE {fleet.db}")
        fleet.env["SY_PG"] = f"{PG}/{fleet.db}"
        procs = []
        for i in range(4):
            cfg = fleet.config(f"r{i}", redis=False)
            procs.append(subprocess.Popen([BIN, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0"],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fleet.env))
        for p in procs:
            line = p.stdout.readline()
            assert "listening on" in line, (line, p.stderr.read() if p.poll() is not None else "")
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=20)
        assert psql(fleet.db, "SELECT count(*) FROM switchyard_migrations") == "3"
        psql("postgres", f"DROP DATABASE {fleet.db} WITH (FORCE)")


def test_prompts_are_logged_within_the_text_bound_and_inline_media_never(fleet, tmp_path):
    a = fleet.replica("a", 'flush = "100ms"\n', max_body_bytes=8 << 20)
    image = "data:image/png;base64," + "A" * 136_000  # 41 images of 102 KB
    parts = [{"type": "text", "text": "describe these " * 10_000}] + [
        {"type": "image_url", "image_url": {"url": image}} for _ in range(41)]
    r = client(a, "rk-fleet").chat.completions.create(model="up/ok", messages=[{"role": "user", "content": parts}])
    rid = r.metadata["request_id"]
    assert wait_for(lambda: psql(fleet.db, f"SELECT count(*) FROM requests WHERE request_id = '{rid}'") == "1")
    row_bytes = int(psql(fleet.db, f"SELECT length(record::text) FROM requests WHERE request_id = '{rid}'"))
    logged = [l for f in (tmp_path / "logs-a").glob("requests-*.ndjson") for l in f.read_text().splitlines() if rid in l]
    assert len(logged) == 1
    # 64 KiB of text at most (logging.max_text_bytes), plus a few bytes per image part
    assert len(logged[0]) < 80_000 and row_bytes < 80_000, (len(logged[0]), row_bytes)
    record = json.loads(logged[0])
    content = record["prompt"][0]["content"]
    assert content[1]["image_url"]["url"] == {"inline_media_not_logged": {"media_type": "image/png", "bytes": 102_000}}
    assert "more bytes not logged" in content[0]["text"]


def test_a_bad_responses_image_names_the_clients_own_path(fleet):
    a = fleet.replica("a")
    code, body = status_of(a, "/v1/responses", "rk-fleet", {"model": "up/ok", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "look"},
                                     {"type": "input_image", "image_url": "ftp://example.com/x.png"}]}]})
    assert code == 400 and body["error"]["param"] == "input[0].content[1]", body


def test_the_judges_scores_reach_the_shared_store(fleet):
    root = Path(__file__).resolve().parents[2]
    judged = (f'[auto]\nartifact = "{root}/models/router-2beb8e015fb4"\nencoder = "{root}/models/encoder-potion"\n'
              'candidates = ["mock/fast", "mock/smart"]\n'
              '[judge]\nmodel = "mock/judge"\nsample_rate = 1.0\n'
              '[[models]]\nid = "mock/judge"\nmock = { reply = "0.8" }\n')
    a = fleet.replica("a", 'flush = "100ms"\n' + judged, redis=False)
    r = client(a, "rk-fleet").chat.completions.create(model="auto", messages=[{"role": "user", "content": "What is 2 + 2?"}])
    rid = r.metadata["request_id"]
    assert wait_for(lambda: psql(fleet.db, f"SELECT source, score FROM feedback WHERE request_id = '{rid}'") == "judge|0.8",
                    timeout=10)
