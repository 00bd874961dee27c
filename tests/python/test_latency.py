"""Latency-aware selection: Switchyard's live, decaying TTFT estimate of each model (from its
own traffic) orders a route with `sort = "ttft"`; the scripted upstream controls the TTFT
(`POST /_mock/delay`), and flipping it flips the order. The estimates show in /v1/models and
/metrics."""

import json
import urllib.request

from openai import OpenAI


def set_delay(gw, model, ms):
    req = urllib.request.Request(gw.mock_url.replace("/v1", "") + "/_mock/delay",
                                 data=json.dumps({"model": model, "ttft_ms": ms}).encode(),
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req).close()


def live(gw):
    with urllib.request.urlopen(gw.base_url + "/models") as r:
        return {m["id"]: m.get("live") for m in json.load(r)["data"]}


def warm(c, n=4):
    for model in ("up/a", "up/b"):
        for _ in range(n):
            c.chat.completions.create(model=model, messages=[{"role": "user", "content": "ping"}], stream=True).close()


def test_sort_by_live_ttft_follows_the_upstream(gateway):
    c = OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    # Unmeasured models keep their config order (and go first, to be measured).
    r = c.chat.completions.create(model="router/sorted", messages=[{"role": "user", "content": "x"}])
    assert r.model == "up/a" and "not measured" in r.metadata["routing"]["reason"]

    set_delay(gateway, "fast-a", 150)
    warm(c)
    est = live(gateway)
    assert est["up/a"]["ttft_p50_ms"] > 140 > est["up/b"]["ttft_p50_ms"], est
    assert est["up/a"]["samples"] >= 4 and est["up/b"]["error_rate"] == 0
    r = c.chat.completions.create(model="router/sorted", messages=[{"role": "user", "content": "x"}])
    assert r.model == "up/b", r.metadata["routing"]["reason"]
    assert [a["model"] for a in r.metadata["attempts"]] == ["up/b"]
    assert r.metadata["routing"]["reason"].index("up/b (") < r.metadata["routing"]["reason"].index("up/a (")

    # The upstream changes: b slows down, a recovers; newer attempts outweigh older ones.
    set_delay(gateway, "fast-a", 0)
    set_delay(gateway, "fast-b", 150)
    warm(c, n=6)
    r = c.chat.completions.create(model="router/sorted", messages=[{"role": "user", "content": "x"}])
    assert r.model == "up/a", r.metadata["routing"]["reason"]

    with urllib.request.urlopen(gateway.url + "/metrics") as m:
        text = m.read().decode()
    assert 'switchyard_model_ttft_p50_ms{model="up/b"}' in text
    assert 'switchyard_model_error_rate{model="up/a"} 0' in text
