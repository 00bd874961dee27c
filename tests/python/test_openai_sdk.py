"""The official `openai` SDK against Switchyard, unchanged but for base_url."""

import json

import openai
import pydantic
import pytest
from openai import OpenAI


def client(gw, **kw):
    return OpenAI(base_url=gw.base_url, api_key=kw.pop("api_key", "unused"), max_retries=0, **kw)


def meta(obj):
    """Switchyard's `metadata`. ChatCompletion declares a `metadata` field of its own (OpenAI's
    stored-completion tags), so there it is an attribute; on chunks it is an extra field."""
    return obj.metadata if "metadata" in type(obj).model_fields else obj.model_extra["metadata"]


def test_chat_completion_with_params_and_extra_body(gateway):
    c = client(gateway)
    raw = c.chat.completions.with_raw_response.create(
        model="up/ok",
        messages=[{"role": "user", "content": "hello sdk"}],
        temperature=0.3,
        max_tokens=100,
        stop=["never"],
        user="user-1",
        seed=5,
        extra_body={"metadata": {"plan": "pro"}, "models": ["mock/fast"], "vendor_knob": 1},
    )
    r = raw.parse()
    assert r.choices[0].message.content == "Hello from ok! You said: hello sdk"
    assert r.model == "up/ok"
    assert raw.headers["x-switchyard-model"] == "up/ok"
    assert raw.headers["x-switchyard-request-id"] == meta(r)["request_id"]
    assert float(raw.headers["x-switchyard-overhead-ms"]) >= 0
    assert [(a["model"], a["success"]) for a in meta(r)["attempts"]] == [("up/ok", True)]
    assert r.usage.completion_tokens > 0
    sent = gateway.mock_requests()[0]["body"]
    assert sent["model"] == "ok"
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 100 and sent["stop"] == ["never"]
    assert sent["seed"] == 5 and sent["vendor_knob"] == 1 and sent["user"] == "user-1"
    assert "metadata" not in sent and "models" not in sent


def test_max_completion_tokens_truncates(gateway):
    r = client(gateway).chat.completions.create(
        model="up/ok", messages=[{"role": "user", "content": "x"}], max_completion_tokens=2
    )
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content == "Hello from"


def test_streaming_with_usage_and_metadata_in_final_chunk(gateway):
    stream = client(gateway).chat.completions.create(
        model="up/ok",
        messages=[{"role": "user", "content": "stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Hello from ok! You said: stream please"
    last = chunks[-1]
    assert last.usage.completion_tokens > 0
    assert meta(last)["model"] == "up/ok"
    assert all(ch.model == "up/ok" for ch in chunks)


def test_failover_is_invisible_to_the_sdk(gateway):
    for stream in (False, True):
        r = client(gateway).chat.completions.create(
            model="up/429",
            messages=[{"role": "user", "content": "x"}],
            stream=stream,
            extra_body={"models": ["up/500", "up/hang-ttft", "up/ok"]},
        )
        if stream:
            chunks = list(r)
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            m = meta(chunks[-1])
        else:
            text, m = r.choices[0].message.content, meta(r)
        assert text == "Hello from ok! You said: x"
        attempts = [(a["model"], a["success"]) for a in m["attempts"]]
        # Streaming: hang_ttft misses the 500ms TTFT timeout; non-streaming: the 3s total timeout.
        expected = [("up/429", False), ("up/500", False), ("up/hang-ttft", False), ("up/ok", True)]
        assert attempts == expected


def test_tools_and_tool_results(gateway):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    c = client(gateway)
    for model in ("up/ok", "anth/claude"):
        r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "Paris"}], tools=tools)
        call = r.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Paris"}
        follow = c.chat.completions.create(
            model=model,
            tools=tools,
            messages=[
                {"role": "user", "content": "Paris"},
                {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
            ],
        )
        assert follow.choices[0].message.content.startswith("Hello from")


def test_json_mode_and_json_schema_parse(gateway):
    c = client(gateway)
    r = c.chat.completions.create(
        model="up/ok", messages=[{"role": "user", "content": "q"}], response_format={"type": "json_object"}
    )
    assert "answer" in json.loads(r.choices[0].message.content)

    class Weather(pydantic.BaseModel):
        city: str
        celsius: int

    parsed = c.chat.completions.parse(
        model="up/ok", messages=[{"role": "user", "content": "Oslo"}], response_format=Weather
    )
    w = parsed.choices[0].message.parsed
    assert isinstance(w, Weather) and w.celsius == 1


def test_router_with_metadata_and_sticky_user(gateway):
    c = client(gateway)
    r = c.chat.completions.create(
        model="router/support", messages=[{"role": "user", "content": "x"}], extra_body={"metadata": {"plan": "free"}}
    )
    assert r.model == "mock/fast" and meta(r)["routing"]["route"] == "free"
    variants = set()
    for u in range(12):
        seen = {
            meta(
                c.chat.completions.create(
                    model="router/support", user=f"u{u}", messages=[{"role": "user", "content": "x"}]
                )
            )["routing"]["variant"]
            for _ in range(3)
        }
        assert len(seen) == 1, "sticky per user"
        variants |= seen
    assert variants == {"a", "b"}


def test_errors_are_typed_sdk_exceptions(gateway):
    c = client(gateway)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="no/such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="up/ok", messages=[])
    assert e.value.body["param"] == "messages"
    with pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model="up/429", messages=[{"role": "user", "content": "x"}], extra_body={"models": ["up/500"]})
    assert e.value.status_code == 502
    assert [a["model"] for a in e.value.body["attempts"]] == ["up/429", "up/500"]
    with pytest.raises(openai.APIStatusError) as e:
        c.chat.completions.create(model="up/ok", messages=[{"role": "user", "content": "x" * 70000}])
    assert e.value.status_code == 413


def test_broken_stream_raises_instead_of_truncating(gateway):
    stream = client(gateway).chat.completions.create(
        model="up/drop", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    with pytest.raises(openai.APIError) as e:
        for _ in stream:
            pass
    assert "stream interrupted" in str(e.value)


def test_models_list(gateway):
    ids = {m.id for m in client(gateway).models.list()}
    assert {"up/ok", "anth/claude", "router/support", "auto"} <= ids


def test_router_api_keys(keyed_gateway):
    with pytest.raises(openai.AuthenticationError):
        client(keyed_gateway, api_key="wrong").chat.completions.create(
            model="up/ok", messages=[{"role": "user", "content": "x"}]
        )
    r = client(keyed_gateway, api_key="rk-1").chat.completions.create(
        model="up/ok", messages=[{"role": "user", "content": "x"}]
    )
    assert r.choices[0].message.content


def test_every_request_is_logged_and_flushed_on_sigterm(gateway):
    c = client(gateway)
    ids = []
    for i in range(10):
        r = c.chat.completions.create(model="up/ok", messages=[{"role": "user", "content": f"n{i}"}])
        ids.append(meta(r)["request_id"])
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    records = gateway.stop()
    assert len(records) == 11
    assert [r["request_id"] for r in records[:10]] == ids
    assert all("sk-upstream-secret" not in json.dumps(r) for r in records)
