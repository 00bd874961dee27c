"""Failover conduct against the scripted upstream's faults, through both SDKs: same-model
retries (a 500 once, a 429 with Retry-After), a first-token limit while a fallback exists,
a stalled stream, a malformed chunk, a stream without [DONE], a context-length refusal that
moves to a larger window, and a circuit that notices its model recovered."""

import json
import os
import signal
import time
import urllib.request

import anthropic
import pytest
from openai import OpenAI

from conftest import _start, render_config

FAULTS = """
[[models]]
id = "up/once500"
upstream = "fault:once_500"
[[models]]
id = "up/once500-b"
upstream = "fault:once_500#b"
[[models]]
id = "up/once429"
upstream = "fault:once_429"
[[models]]
id = "up/once429-b"
upstream = "fault:once_429#b"
[[models]]
id = "up/stall"
upstream = "fault:stall_mid"
[[models]]
id = "up/badchunk"
upstream = "fault:bad_chunk"
[[models]]
id = "up/nodone"
upstream = "fault:no_done"
[[models]]
id = "up/small-a"
upstream = "fault:context"
context_window = 1000
[[models]]
id = "up/small-b"
upstream = "fault:context#b"
context_window = 1000
[[models]]
id = "up/large"
upstream = "ok"
context_window = 200000
[[models]]
id = "up/recovering"
upstream = "fault:down_ms_3000"
[[models]]
id = "up/cut"
upstream = "fault:cut_mid"
[[models]]
id = "up/noprefill"
upstream = "fault:no_prefill"
[[models]]
id = "up/noprefill-claims"
upstream = "fault:no_prefill#b"
prefill = true
[[models]]
id = "anth/ok"
upstream = "ok"
[[models]]
id = "up/slow"
upstream = "fault:slow_ttft_ms_1500"

[routers.hedged]
hedge = true
default = { model = "up/slow", fallbacks = ["up/ok"] }
"""

WHOLE = "Hello from ok! You said: tell me a story"

SERVER = """ttft_timeout_with_fallback = "500ms"
stream_idle_timeout = "1s"
cooldown_failures = 1
cooldown = "2s"
"""


class Failover:
    def __init__(self, tmp_path):
        self.logs = tmp_path / "logs"
        self.mock, self.mock_url = _start(["mock-upstream", "--listen", "127.0.0.1:0"], r"listening on (http://\S+)")
        text = render_config(self.mock_url, str(tmp_path / "logs"), SERVER) + FAULTS
        text = text.replace("retries = 0", "retries = 1").replace('timeout = "2s"', 'timeout = "10s"', 1)
        text = text.replace('ttft_timeout = "400ms"', 'ttft_timeout = "5s"', 1)
        cfg = tmp_path / "failover.toml"
        cfg.write_text(text)
        self.proc, self.url = _start(["serve", "--config", str(cfg), "--listen", "127.0.0.1:0"],
                                     r"listening on (http://\S+?) ",
                                     env=dict(os.environ, TEST_UPSTREAM_KEY="k"))
        self.openai = OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0)
        self.anthropic = anthropic.Anthropic(base_url=self.url, api_key="unused", max_retries=0)

    def metric(self, name):
        with urllib.request.urlopen(self.url + "/metrics") as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        return None

    def records(self):
        """The request log (after close)."""
        return [json.loads(line) for f in sorted(self.logs.glob("requests-*.ndjson"))
                for line in f.read_text().splitlines() if line]

    def close(self):
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        self.mock.kill()
        self.mock.wait()


@pytest.fixture
def gw(tmp_path):
    g = Failover(tmp_path)
    yield g
    g.close()


def ask(gw, model, fallbacks=("up/ok",), stream=False, **kw):
    body = {"models": list(fallbacks)} if fallbacks else {}
    return gw.openai.chat.completions.create(model=model, stream=stream, extra_body=body,
                                             messages=[{"role": "user", "content": "tell me a story"}], **kw)


def attempts_of(meta):
    return [(a["model"], a.get("status"), a.get("retry", 0), a.get("error_class")) for a in meta["attempts"]]


def test_a_500_once_is_retried_on_the_same_model(gw):
    r = ask(gw, "up/once500")
    assert r.metadata["model"] == "up/once500"
    assert attempts_of(r.metadata) == [("up/once500", 500, 0, "server_error"), ("up/once500", 200, 1, None)]
    # The Anthropic SDK, streaming: the same.
    with gw.anthropic.messages.stream(model="up/once500-b", max_tokens=50, extra_body={"models": ["up/ok"]},
                                      messages=[{"role": "user", "content": "hi"}]) as s:
        text = "".join(s.text_stream)
    assert text
    assert gw.metric("switchyard_retries_total") == 2


def test_a_429_with_retry_after_is_waited_out_and_retried(gw):
    t = time.time()
    r = ask(gw, "up/once429")
    waited = time.time() - t
    assert r.metadata["model"] == "up/once429", r.metadata["attempts"]
    assert attempts_of(r.metadata) == [("up/once429", 429, 0, "rate_limited"), ("up/once429", 200, 1, None)]
    assert 2.0 <= waited < 4.0, waited
    # The Anthropic SDK: the same wait, the same model.
    t = time.time()
    m = gw.anthropic.messages.create(model="up/once429-b", max_tokens=50, extra_body={"models": ["up/ok"]},
                                     messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text and 2.0 <= time.time() - t < 4.0


def test_a_slow_first_token_fails_over_at_the_shorter_limit_while_a_fallback_exists(gw):
    t = time.time()
    chunks = list(ask(gw, "up/hang-ttft", stream=True, stream_options={"include_usage": True}))
    took = time.time() - t
    meta = chunks[-1].model_extra["metadata"] if chunks[-1].model_extra.get("metadata") else None
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert took < 2.0, took  # 500 ms ttft_timeout_with_fallback, not the 5 s ttft_timeout
    if meta:
        assert meta["attempts"][0]["error_kind"] == "ttft_timeout"
    t = time.time()
    with gw.anthropic.messages.stream(model="up/hang-ttft", max_tokens=50, extra_body={"models": ["up/ok"]},
                                      messages=[{"role": "user", "content": "hi"}]) as s:
        assert "".join(s.text_stream)
    assert time.time() - t < 2.0


def stream_text(chunks):
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def final_metadata(chunks):
    return next(c.model_extra["metadata"] for c in reversed(chunks) if (c.model_extra or {}).get("metadata"))


@pytest.mark.parametrize("rescuer, prefill", [("anth/ok", True), ("up/ok", False), ("up/noprefill", False),
                                              ("up/noprefill-claims", False)])
def test_a_stream_cut_mid_answer_is_finished_by_the_next_model(gw, rescuer, prefill):
    chunks = list(ask(gw, "up/cut", fallbacks=(rescuer,), stream=True))
    # One whole answer, spliced without repeating what was sent, in one stream with one id.
    assert stream_text(chunks) == WHOLE
    assert len({c.id for c in chunks}) == 1
    meta = final_metadata(chunks)
    rescue = meta["rescue"]
    assert rescue["from"] == "up/cut" and rescue["finished_by"] == rescuer, rescue
    assert 0 < rescue["rescued_at_chars"] < len(WHOLE)
    assert rescue["prefill"] is prefill or rescuer == "up/noprefill-claims"
    tried = [(a["model"], a["success"]) for a in meta["attempts"]]
    assert tried[0] == ("up/cut", False) and tried[-1] == (rescuer, True), tried
    assert gw.metric("switchyard_stream_rescues_total") == 1
    gw.close()
    [record] = gw.records()
    assert record["rescue"]["finished_by"] == rescuer and record["stream_interrupted"] is False
    assert record["completion"] == WHOLE


def test_rescue_in_the_anthropic_and_responses_formats(gw):
    with gw.anthropic.messages.stream(model="up/cut", max_tokens=100, extra_body={"models": ["anth/ok"]},
                                      messages=[{"role": "user", "content": "tell me a story"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == WHOLE and final.stop_reason == "end_turn"
    events = list(gw.openai.responses.create(model="up/cut", input="tell me a story", stream=True,
                                             extra_body={"models": ["up/ok"]}))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == WHOLE and events[-1].type == "response.completed"


def test_a_stalled_stream_is_rescued_by_the_next_model(gw):
    t = time.time()
    chunks = list(ask(gw, "up/stall", fallbacks=("up/ok",), stream=True))
    assert stream_text(chunks) == WHOLE
    assert final_metadata(chunks)["rescue"]["reason"].startswith("the upstream stream stalled")
    assert time.time() - t < 3.0


def test_a_stalled_stream_is_detected_by_the_idle_limit(gw):
    t = time.time()
    resp = urllib.request.urlopen(urllib.request.Request(
        gw.url + "/v1/chat/completions", headers={"content-type": "application/json"},
        data=json.dumps({"model": "up/stall", "stream": True, "messages": [{"role": "user", "content": "a b c d e f g"}]}).encode()))
    # (no fallback: nothing to rescue it, so the stream ends with the error)
    body = resp.read().decode()
    took = time.time() - t
    assert 0.9 < took < 3.0, took  # stream_idle_timeout = 1 s, not the 10 s total timeout
    assert "stream_idle_timeout" in body and "stream_interrupted" in body
    assert gw.metric("switchyard_stream_stalls_total") == 1


def test_a_malformed_chunk_is_skipped_and_counted(gw):
    chunks = list(ask(gw, "up/badchunk", fallbacks=(), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert gw.metric("switchyard_stream_malformed_chunks_total") == 1
    with gw.anthropic.messages.stream(model="up/badchunk", max_tokens=50,
                                      messages=[{"role": "user", "content": "hi"}]) as s:
        assert "".join(s.text_stream)


def test_a_stream_without_done_finishes_normally_with_usage(gw):
    chunks = list(ask(gw, "up/nodone", fallbacks=(), stream=True, stream_options={"include_usage": True}))
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens > 0
    raw = urllib.request.urlopen(urllib.request.Request(
        gw.url + "/v1/chat/completions", headers={"content-type": "application/json"},
        data=json.dumps({"model": "up/nodone", "stream": True, "messages": [{"role": "user", "content": "x"}]}).encode())).read().decode()
    assert raw.rstrip().endswith("data: [DONE]") and "stream_interrupted" not in raw


def test_context_length_moves_to_a_larger_window_and_never_retries(gw):
    r = ask(gw, "up/small-a", fallbacks=("up/small-b", "up/large"))
    assert r.metadata["model"] == "up/large"
    got = [(a["model"], a.get("skipped"), a.get("error_class")) for a in r.metadata["attempts"]]
    assert got == [("up/small-a", None, "context_length"), ("up/small-b", "context_window", None),
                   ("up/large", None, None)], got
    # The Anthropic SDK: the same move.
    m = gw.anthropic.messages.create(model="up/small-a", max_tokens=50, extra_body={"models": ["up/small-b", "up/large"]},
                                     messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text
    # No larger window left: the provider's 400, after one try.
    with pytest.raises(Exception) as e:
        ask(gw, "up/small-a", fallbacks=("up/small-b",))
    assert getattr(e.value, "status_code", None) == 400 and "context length" in str(e.value)


def test_a_recovered_model_gets_traffic_again_within_the_cooldown(gw):
    # 503 for 3 s from its first request; a request every 0.25 s with up/ok as fallback.
    start = time.time()
    served_by_primary_at = None
    while time.time() - start < 9:
        r = ask(gw, "up/recovering")
        if r.metadata["model"] == "up/recovering":
            served_by_primary_at = time.time() - start
            break
        time.sleep(0.25)
    assert served_by_primary_at is not None
    # recovered at 3 s; the open period is at most server.cooldown (2 s) after a failed probe
    assert served_by_primary_at < 3 + 2 + 0.75, served_by_primary_at
    with urllib.request.urlopen(gw.url + "/v1/models") as r:
        models = {m["id"]: m for m in json.load(r)["data"]}
    assert models["up/recovering"]["cooldown"]["state"] == "closed"


def test_a_hedged_router_serves_whichever_model_sends_its_first_token_first(gw):
    # up/slow's first token comes after 1.5 s; without live times the hedge starts after half
    # the first-token limit (250 ms) and up/ok wins; up/slow is cancelled and its prompt cost kept.
    t = time.time()
    chunks = list(gw.openai.chat.completions.create(model="router/hedged", stream=True,
                                                    messages=[{"role": "user", "content": "tell me a story"}]))
    took = time.time() - t
    assert stream_text(chunks) == WHOLE
    meta = final_metadata(chunks)
    got = [(a["model"], a.get("hedge"), a["success"]) for a in meta["attempts"]]
    assert got == [("up/slow", "cancelled", False), ("up/ok", "won", True)], got
    assert meta["attempts"][0]["error"].startswith("cancelled") and "cost_usd" in meta["attempts"][0]
    assert took < 0.5 + 0.4, took  # the hedge at 250 ms, not the 500 ms first-token failover
    assert gw.metric("switchyard_hedges_total") == 1
