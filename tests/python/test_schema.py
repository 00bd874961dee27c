"""The records the gateway writes match the JSON Schemas generated from their Rust types
(`docs/schema/`, `switchyard-train schema`): every request log line (served, failed over,
streamed, refused, an `auto` decision), every feedback line and the committed artifacts'
manifests. And the APGR the simulator reports is the trainer's, the one definition."""

import json
import sys
import urllib.request

from pathlib import Path

import jsonschema
from openai import OpenAI

from conftest import BIN, ROOT, DefaultServer

sys.path.insert(0, str(ROOT / "scripts"))
from simulator import metrics  # noqa: E402  (scripts/ is not a package path)

SCHEMAS = ROOT / "docs" / "schema"


def validator(name):
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def lines(logs, prefix):
    return [json.loads(l) for f in sorted(logs.glob(f"{prefix}-*.ndjson")) for l in f.read_text().splitlines() if l]


def test_every_record_the_gateway_writes_matches_its_schema(gateway):
    client = OpenAI(base_url=gateway.base_url, api_key="rk-1", max_retries=0)
    served = client.chat.completions.with_raw_response.create(model="up/ok", messages=[{"role": "user", "content": "hello"}])
    request_id = served.headers["x-switchyard-request-id"]
    client.chat.completions.create(model="chain", messages=[{"role": "user", "content": "failover"}])
    for _ in client.chat.completions.create(model="up/ok", messages=[{"role": "user", "content": "stream"}], stream=True):
        pass
    assert post(gateway.base_url + "/chat/completions", {"model": "no/such-model", "messages": []}) == 400
    assert post(gateway.base_url + "/feedback", {"request_id": request_id, "score": 1, "comment": 'a "quoted" word'}) == 200
    records = gateway.stop()
    assert len(records) == 4, records
    log_schema = validator("log-record.json")
    for r in records:
        log_schema.validate(r)
    assert {r["status"] for r in records} == {200, 400}
    assert any(len(r["attempts"]) > 1 for r in records), "the chain failed over"
    assert all(r["v"] == 1 for r in records)
    feedback = lines(gateway.logs, "feedback")
    assert len(feedback) == 1
    validator("feedback-record.json").validate(feedback[0])
    # The schema is not vacuous: a record missing what every reader needs is refused.
    bad = dict(records[0])
    del bad["request_id"]
    assert not log_schema.is_valid(bad)


def test_an_auto_decision_matches_the_schema(tmp_path):
    server = DefaultServer(tmp_path, config_text=None)
    try:
        client = OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "What is 2 + 2?"}])
    finally:
        server.stop()
    records = lines(tmp_path / "logs", "requests")
    assert records and all("learned" in r for r in records), records
    for r in records:
        validator("log-record.json").validate(r)


def test_the_committed_manifests_match_the_schema():
    manifests = list((ROOT / "models").glob("router-*/manifest.json"))
    assert manifests
    for m in manifests:
        validator("manifest.json").validate(json.loads(m.read_text()))


def test_the_simulator_reports_the_trainers_apgr():
    metrics.TRAIN_BIN = Path(BIN).parent / "switchyard-train"
    cheap, strong = (1.0, 0.5), (11.0, 0.9)
    # A random mix of the two models is the diagonal: APGR 1/2.
    assert abs(metrics.apgr([(1.0 + 10 * s, 0.5 + 0.4 * s) for s in (0.2, 0.5, 0.7)], cheap, strong) - 0.5) < 1e-12
    # Points under their hull count as they are (the hull would give more).
    points = [(2.0, 0.6), (5.0, 0.8), (8.0, 0.7)]
    want = 0.1 * 0.125 + 0.3 * (0.25 + 0.75) / 2 + 0.3 * (0.75 + 0.5) / 2 + 0.3 * (0.5 + 1) / 2
    assert abs(metrics.apgr(points, cheap, strong) - want) < 1e-12
