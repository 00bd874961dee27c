"""`POST /v1/embeddings` through Switchyard with the official `openai` SDK: a model, a router,
failover along an explicit `models` list, clear errors, usage and cost in the log."""

import math

import openai
import pytest
from openai import OpenAI


def client(gw):
    return OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def meta(r):
    return r.model_extra["metadata"]


def test_embeddings_from_a_model_and_a_batch(gateway):
    c = client(gateway)
    r = c.embeddings.create(model="up/ok", input="hello world")
    assert r.model == "up/ok" and len(r.data) == 1
    v = r.data[0].embedding
    assert len(v) == 16 and abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4
    assert r.usage.prompt_tokens > 0
    # The SDK asks for base64 by default; floats when asked, the same vector.
    floats = c.embeddings.create(model="up/ok", input="hello world", encoding_format="float")
    assert [round(x, 5) for x in floats.data[0].embedding] == [round(x, 5) for x in v]
    batch = c.embeddings.create(model="up/ok", input=["a", "b", "c"], dimensions=8)
    assert [d.index for d in batch.data] == [0, 1, 2] and len(batch.data[2].embedding) == 8
    assert gateway.mock_requests()[-1]["path"] == "/v1/embeddings"
    assert gateway.mock_requests()[-1]["body"]["model"] == "ok"


def test_embeddings_fail_over_and_route(gateway):
    c = client(gateway)
    r = c.embeddings.create(model="up/500", input="x", extra_body={"models": ["up/429", "up/ok"]})
    assert [(a["model"], a["success"]) for a in meta(r)["attempts"]] == [
        ("up/500", False), ("up/429", False), ("up/ok", True)]
    r = c.embeddings.create(model="router/ab", input="y", user="someone")
    assert meta(r)["routing"]["router"] == "ab" and r.model in ("mock/fast", "mock/smart")
    # An Anthropic model in a chain is left out (it has no embeddings API).
    r = c.embeddings.create(model="anth/claude", input="z", extra_body={"models": ["up/ok"]})
    assert [a["model"] for a in meta(r)["attempts"]] == ["up/ok"]


def test_embedding_errors_are_named(gateway):
    c = client(gateway)
    for kwargs, param, words in [
        (dict(model="anth/claude", input="x"), "model", "no model of the chain"),
        (dict(model="auto", input="x"), "model", "learned routing"),
        (dict(model="up/ok", input=""), "input", "`input` must be"),
        (dict(model="up/ok", input=[{"not": "text"}]), "input", "`input` must be"),
    ]:
        with pytest.raises(openai.BadRequestError) as e:
            c.embeddings.create(**kwargs)
        assert e.value.body["param"] == param and words in e.value.body["message"], e.value.body
    with pytest.raises(openai.InternalServerError):
        c.embeddings.create(model="up/500", input="x")


def test_embeddings_are_logged_with_usage_and_cost(gateway):
    c = client(gateway)
    r = c.embeddings.create(model="up/ok", input="count my tokens please")
    records = gateway.stop()
    rec = next(x for x in records if x["request_id"] == meta(r)["request_id"])
    assert rec["endpoint"] == "/v1/embeddings" and rec["model"] == "up/ok"
    assert rec["prompt_tokens"] == r.usage.prompt_tokens and rec["completion_tokens"] == 0
    assert rec["cost_usd"] == pytest.approx(r.usage.prompt_tokens * 1.0 / 1e6)
