"""The Responses API (`client.responses.create`) through Switchyard with the official `openai`
SDK, unchanged but for base_url: text, items, instructions, tools and function calls, JSON
schema output, streaming events in order, every routing mode, failover and clear errors."""

import json

import openai
import pydantic
import pytest
from openai import OpenAI

from conftest import DefaultServer, Gateway


def client(url):
    return OpenAI(base_url=url, api_key="unused", max_retries=0)


def test_text_input_instructions_and_metadata(gateway):
    c = client(gateway.base_url)
    r = c.responses.create(model="up/ok", input="Hello there", instructions="Be brief.", max_output_tokens=100,
                           user="u-1", metadata={"plan": "pro"})
    assert r.object == "response" and r.status == "completed"
    assert r.output_text == "Hello from ok! You said: Hello there"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.model == "up/ok"
    m = r.metadata
    assert [a["model"] for a in m["attempts"]] == ["up/ok"]
    sent = gateway.mock_requests()[-1]["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["max_tokens"] == 100 and sent["user"] == "u-1"
    # An Anthropic upstream, by translation.
    r = c.responses.create(model="anth/claude", input=[{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}])
    assert r.output_text.startswith("Hello from")
    assert gateway.mock_requests()[-1]["path"] == "/v1/messages"


def test_router_auto_and_failover(gateway, tmp_path):
    c = client(gateway.base_url)
    r = c.responses.create(model="router/ab", input="hi", user="someone")
    assert r.metadata["routing"]["router"] == "ab"
    r = c.responses.create(model="up/429", input="x", extra_body={"models": ["up/500", "up/ok"]})
    assert r.output_text == "Hello from ok! You said: x"
    assert [(a["model"], a["success"]) for a in r.metadata["attempts"]] == [
        ("up/429", False), ("up/500", False), ("up/ok", True)]
    server = DefaultServer(tmp_path / "default")
    try:
        r = client(server.url + "/v1").responses.create(model="auto", input="Prove that 17 is prime.")
        assert r.metadata["routing"]["chosen"] == r.model
        assert r.output_text
    finally:
        server.stop()


def test_function_calls_round_trip(gateway):
    tools = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    c = client(gateway.base_url)
    for model in ("up/ok", "anth/claude"):
        r = c.responses.create(model=model, input="Paris", tools=tools)
        call = next(o for o in r.output if o.type == "function_call")
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
        follow = c.responses.create(model=model, tools=tools, input=[
            {"role": "user", "content": "Paris"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ])
        assert follow.output_text.startswith("Hello from")


def test_json_schema_output_parses(gateway):
    class Weather(pydantic.BaseModel):
        city: str
        celsius: int

    r = client(gateway.base_url).responses.parse(model="up/ok", input="Oslo", text_format=Weather)
    assert isinstance(r.output_parsed, Weather)
    sent = gateway.mock_requests()[-1]["body"]
    assert sent["response_format"]["type"] == "json_schema"


def test_streaming_events_in_order(gateway):
    c = client(gateway.base_url)
    events = list(c.responses.create(model="up/ok", input="one two three", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[2:4] == ["response.output_item.added", "response.content_part.added"]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1
    i = types.index("response.output_text.done")
    assert types[i:] == ["response.output_text.done", "response.content_part.done",
                         "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(d.delta for d in deltas)
    assert text == "Hello from ok! You said: one two three"
    assert events[i].text == text
    done = events[-1].response
    assert done.output_text == text and done.usage.output_tokens > 0
    assert [a["model"] for a in done.metadata["attempts"]] == ["up/ok"]
    # Streaming failover: hang_ttft times out before a byte, ok serves.
    events = list(c.responses.create(model="up/hang-ttft", input="x", stream=True, extra_body={"models": ["up/ok"]}))
    assert [a["success"] for a in events[-1].response.metadata["attempts"]] == [False, True]
    # The SDK's stream helper accumulates the same events.
    with c.responses.stream(model="anth/claude", input="hey") as s:
        final = s.get_final_response()
    assert final.output_text.startswith("Hello from")


def test_streamed_function_call(gateway):
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    events = list(client(gateway.base_url).responses.create(model="up/ok", input="cats", tools=tools, stream=True))
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"q": "cats"}
    call = events[-1].response.output[0]
    assert call.type == "function_call" and call.name == "lookup"


def test_broken_stream_ends_with_response_failed(gateway):
    events = list(client(gateway.base_url).responses.create(model="up/drop", input="a b c d e f", stream=True))
    assert events[-1].type == "response.failed"
    assert "stream interrupted" in events[-1].response.error.message


def test_unsupported_features_are_named(gateway):
    c = client(gateway.base_url)
    cases = [
        (dict(input="hi", previous_response_id="resp_123"), "previous_response_id"),
        (dict(input="hi", tools=[{"type": "web_search"}]), "tools[0]"),
        (dict(input=[{"type": "item_reference", "id": "x"}]), "input[0]"),
        (dict(input=[{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]), "input[0].content[0]"),
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(model="up/ok", **kwargs)
        assert e.value.body["param"] == param, e.value.body
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="no/such-model", input="hi")


def test_native_responses_upstream_is_passed_through(gateway):
    c = client(gateway.base_url)
    r = c.responses.create(model="native/ok", input="pass me through", instructions="Be brief.",
                           extra_body={"metadata": {"plan": "pro"}})
    sent = gateway.mock_requests()[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["body"]["input"] == "pass me through" and sent["body"]["instructions"] == "Be brief."
    assert sent["body"]["model"] == "ok" and "metadata" not in sent["body"]
    assert r.id.startswith("resp_mock"), "the upstream's own response object"
    assert r.model == "native/ok" and r.output_text == "Hello from ok! You said: pass me through"
    assert [a["model"] for a in r.metadata["attempts"]] == ["native/ok"]
    assert r.usage.output_tokens > 0

    events = list(c.responses.create(model="native/ok", input="stream me", stream=True))
    assert gateway.mock_requests()[-1]["path"] == "/v1/responses"
    assert events[0].type == "response.created" and events[0].response.id.startswith("resp_mock")
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == "Hello from ok! You said: stream me"
    assert [a["model"] for a in events[-1].response.metadata["attempts"]] == ["native/ok"]

    # Failover before the first byte: a native upstream that never answers, then a chat one.
    events = list(c.responses.create(model="native/hang-ttft", input="x", stream=True, extra_body={"models": ["up/ok"]}))
    assert [(a["model"], a["success"]) for a in events[-1].response.metadata["attempts"]] == [
        ("native/hang-ttft", False), ("up/ok", True)]
    events = list(c.responses.create(model="native/drop", input="a b c d e f g h", stream=True))
    assert events[-1].type == "response.failed" and "stream interrupted" in events[-1].response.error.message


def test_an_inline_image_over_the_limit_is_named_by_the_clients_input_path(tmp_path):
    import urllib.error
    import urllib.request

    gw = Gateway(tmp_path, server_extra="max_media_bytes = 1000")
    try:
        big = "data:image/png;base64," + "A" * 4000
        body = {"model": "up/ok", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": big}]}]}
        req = urllib.request.Request(gw.base_url + "/responses", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        try:
            urllib.request.urlopen(req)
            raise AssertionError("accepted")
        except urllib.error.HTTPError as e:
            err = json.load(e)["error"]
            assert e.code == 400 and err["param"] == "input[0].content[1]", err
            assert "server.max_media_bytes" in err["message"]
    finally:
        gw.stop()
