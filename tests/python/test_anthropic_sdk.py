"""The official `anthropic` SDK against Switchyard's /v1/messages."""

import anthropic
import pytest
from anthropic import Anthropic

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def client(gw):
    return Anthropic(base_url=gw.url, api_key="unused", max_retries=0)


@pytest.mark.parametrize("model", ["anth/claude", "up/ok"])
def test_messages_to_anthropic_and_openai_upstreams(gateway, model):
    m = client(gateway).messages.create(
        model=model,
        max_tokens=200,
        system="be brief",
        messages=[{"role": "user", "content": "hola"}],
        metadata={"user_id": "u-7"},
    )
    upstream = "claude-test" if model == "anth/claude" else "ok"
    assert m.content[0].text == f"Hello from {upstream}! You said: hola"
    assert m.model == model
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens > 0
    assert m.model_extra["metadata"]["attempts"][0]["model"] == model


@pytest.mark.parametrize("model", ["anth/claude", "up/ok"])
def test_streaming_messages(gateway, model):
    with client(gateway).messages.stream(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "stream it"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.endswith("You said: stream it")
    assert final.content[0].text == text
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["anth/claude", "up/ok"])
def test_tool_use_round_trip(gateway, model):
    c = client(gateway)
    m = c.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=[{"role": "user", "content": "Rome"}])
    assert m.stop_reason == "tool_use"
    tool = next(b for b in m.content if b.type == "tool_use")
    assert tool.name == "get_weather" and tool.input == {"city": "Rome"}
    follow = c.messages.create(
        model=model,
        max_tokens=200,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Rome"},
            {"role": "assistant", "content": [b.model_dump() for b in m.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "sunny"}]},
        ],
    )
    assert follow.content[0].text.startswith("Hello from")
    with c.messages.stream(model=model, max_tokens=200, tools=TOOLS, messages=[{"role": "user", "content": "Oslo"}]) as s:
        final = s.get_final_message()
    tool = next(b for b in final.content if b.type == "tool_use")
    assert tool.input == {"city": "Oslo"}


def test_failover_and_errors(gateway):
    c = client(gateway)
    m = c.messages.create(
        model="up/429", max_tokens=50, messages=[{"role": "user", "content": "x"}], extra_body={"models": ["anth/claude"]}
    )
    assert m.model == "anth/claude"
    with pytest.raises(anthropic.NotFoundError):
        c.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.APIStatusError) as e:
        c.messages.create(model="up/500", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502
    with pytest.raises(anthropic.APIError):
        with c.messages.stream(model="up/drop", max_tokens=50, messages=[{"role": "user", "content": "a b c"}]) as s:
            for _ in s.text_stream:
                pass
