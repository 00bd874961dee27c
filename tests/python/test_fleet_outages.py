"""Replicas through outages and load: fifty concurrent requests against a budget, PostgreSQL and
Redis restarted under traffic, four replicas starting at once on an empty database, prompt
logging bounds, and what the judge and a bad Responses image leave in the shared store."""

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import openai
import pytest

from conftest import BIN

from fleet_support import PG, psql, client, chat, accepted, wait_for, PRICEY, get_json, status_of


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
