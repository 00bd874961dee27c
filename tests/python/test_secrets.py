"""No secret escapes: the scripted upstream quotes the credentials it received in every error
body (as careless real upstreams do). Through both official SDKs, streaming and not, failed and
failed over, the key appears nowhere: not in what the client gets, the metadata, the request
log, /metrics or the server's stderr."""

import json

import anthropic
import openai
import pytest
from anthropic import Anthropic
from openai import OpenAI

KEY = "sk-upstream-secret"  # what conftest puts in TEST_UPSTREAM_KEY


def _openai(gw):
    return OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)


def _anthropic(gw):
    return Anthropic(base_url=gw.url, api_key="unused", max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_key_never_escapes(gateway, stream):
    seen = []
    msgs = [{"role": "user", "content": "hi"}]
    for model in ["up/500", "up/429"]:
        with pytest.raises(openai.APIError) as e:
            r = _openai(gateway).chat.completions.create(model=model, messages=msgs, stream=stream)
            if stream:
                list(r)
        seen.append(json.dumps(e.value.body))
        seen.append(str(e.value))
        with pytest.raises(anthropic.APIError) as e:
            _anthropic(gateway).messages.create(model=model, max_tokens=20, messages=msgs, stream=stream)
        seen.append(json.dumps(e.value.body))
        seen.append(str(e.value))
        r = _openai(gateway).chat.completions.create(
            model=model, messages=msgs, extra_body={"models": ["up/ok"]}, stream=stream
        )
        if stream:
            seen += [c.model_dump_json() for c in r]
        else:
            seen.append(json.dumps(r.metadata))
        m = _anthropic(gateway).messages.create(
            model=model, max_tokens=20, messages=msgs, extra_body={"models": ["up/ok"]}
        )
        seen.append(m.model_dump_json())
    import urllib.request

    with urllib.request.urlopen(gateway.url + "/metrics") as r:
        seen.append(r.read().decode())
    records = gateway.stop()
    assert len(records) == 8
    seen.append(json.dumps(records))
    seen.append(gateway.stderr_path.read_text())
    for text in seen:
        assert KEY not in text, text
    assert any("[REDACTED]" in t for t in seen), "the echo is redacted, not lost"
    assert any("attempt failed" in t for t in seen[-1:]), "stderr was captured"
