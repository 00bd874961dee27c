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

import openai
import pytest


import fleet_support
from fleet_support import psql, client, chat, accepted, wait_for, get_json, status_of


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


def test_budget_pacing_steps_auto_down_before_the_budget_refuses(fleet):
    """A key whose spend runs ahead of its daily budget's time: `auto` raises its cost weight
    (the decision says by how much and why) while admission still admits."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    auto = (f'[auto]\nartifact = "{root}/models"\nencoder = "{root}/models/encoder-potion"\n'
            'candidates = ["up/ok", "up/second"]\nonboard = 0\nwatch = false\n')
    a = fleet.replica("a", store_extra='flush = "100ms"\n' + auto)
    key_id, key = fleet.create_key("--budget-day", "100")
    assert wait_for(lambda: accepted(a, key))

    def decision():
        r = client(a, key).chat.completions.create(model="auto", messages=[{"role": "user", "content": "Explain recursion."}])
        return r.metadata["routing"]

    calm = decision()
    assert "pacing" not in calm and calm["cost_weight"] == 0.1, calm
    # Spend three quarters of the way from on pace to spent, whatever the time of day: the share
    # of the UTC day gone plus 0.75 of the rest (written to the shared counter, as other
    # replicas' spend would be).
    now = time.time()
    elapsed = (now % 86400) / 86400
    share = elapsed + 0.75 * (1 - elapsed)
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    subprocess.run(["redis-cli", "-u", fleet_support.REDIS, "SET", f"{fleet.prefix}usd:{key_id}:{day}", str(100 * share)],
                   check=True, capture_output=True)
    paced = decision()
    p = paced["pacing"]
    assert p["budget"] == "daily" and abs(p["spent_share"] - share) < 0.001, (p, share)
    assert abs(p["pressure"] - 0.75) < 0.01 and p["cost_weight_before"] == 0.1, p
    assert paced["cost_weight"] > calm["cost_weight"], paced
