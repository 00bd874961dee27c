"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, after real
traffic (the official SDKs) through the server on its embedded default config. Fails on any
JavaScript console error. Writes a screenshot to target/screenshots/dashboard.png, or to
$SWITCHYARD_SCREENSHOT (the docs' is made with SWITCHYARD_SCREENSHOT=docs/src/dashboard.png)."""

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from anthropic import Anthropic
from openai import OpenAI

from conftest import BIN, ROOT, DefaultServer

CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.fail(f"{CHROMIUM} is missing: scripts/setup_browser.sh installs it", pytrace=False)

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PANELS = ["traffic", "models", "costs", "failovers", "feedback", "learned", "savings", "experiments", "requests"]


def get_json(url, key=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def post_json(url, body, key=None):
    headers = {"content-type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def traffic(url, logs, key="unused"):
    """Real requests of every kind the panels show; returns (request count, a failover's id)."""
    client = OpenAI(base_url=url + "/v1", api_key=key)
    n = 0
    demo_ids = []
    for i in range(24):
        r = client.chat.completions.create(
            model="router/demo", user=f"user-{i}",
            messages=[{"role": "user", "content": f"Hello number {i}"}],
            extra_body={"metadata": {"plan": "free" if i % 6 == 0 else "pro"}},
        )
        demo_ids.append((r.metadata["request_id"], r.model))
        n += 1
    failover_id = None
    for i in range(4):
        r = client.chat.completions.create(
            model="router/resilient", messages=[{"role": "user", "content": f"Hi {i}"}]
        )
        failover_id = failover_id or r.metadata["request_id"]
        n += 1
    prompts = ["hi", "Prove that there are infinitely many primes.", "Translate 'good morning' to French.",
               "Write a Python function that reverses a linked list.", "What is 17 * 23?"]
    for p in prompts:
        for knob in ["auto", "auto:cheap"]:
            client.chat.completions.create(model=knob, messages=[{"role": "user", "content": p}])
            n += 1
    stream = client.chat.completions.create(
        model="router/tiered", stream=True, messages=[{"role": "user", "content": "Stream please"}]
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    n += 1
    claude = Anthropic(base_url=url, api_key=key)
    claude.messages.create(model="mock/smart", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    n += 1
    # Feedback from users on the A/B router's answers, and a judge's scores as the server's
    # judge writes them (clients may not post `source: "judge"`).
    judged = []
    for i, (rid, model) in enumerate(demo_ids):
        score = 0.9 if model == "mock/smart" else 0.4 + 0.05 * (i % 3)
        post_json(url + "/v1/feedback", {"request_id": rid, "score": score}, key)
        judged.append(json.dumps({"request_id": rid, "source": "judge", "score": score - 0.1, "model": model}))
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "feedback-judge.ndjson").write_text("\n".join(judged) + "\n")
    return n, failover_id


def wait_for_rows(url, n, key=None):
    """The log writer batches records to disk: wait until analytics has read them all."""
    deadline = time.time() + 10
    while time.time() < deadline:
        if get_json(url + "/v1/analytics/filters", key)["rows"] >= n:
            return
        time.sleep(0.1)
    raise AssertionError("analytics did not see every request within 10 s")


@pytest.fixture
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, url, errors):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/dashboard")
    return page


def tile(page, label):
    return page.locator(f"#traffic-tiles .tile:has(span:text-is('{label}')) b").inner_text()


def test_dashboard_renders_every_panel_filters_and_drills_down(tmp_path, browser):
    server = DefaultServer(tmp_path)
    try:
        n, failover_id = traffic(server.url, tmp_path / "logs")
        wait_for_rows(server.url, n)
        errors = []
        page = open_page(browser, server.url, errors)
        page.wait_for_selector("body[data-loaded='1']", timeout=15000)
        for panel in PANELS:
            rows = page.locator(f"section[data-panel='{panel}']").get_attribute("data-rows")
            assert rows and int(rows) > 0, f"panel {panel} drew nothing"
        assert tile(page, "requests") == str(n)
        assert "status 503" in page.locator("#failovers-table").inner_text()
        assert "mock/flaky" in page.locator("#failovers-table").inner_text()
        experiments = page.locator("#experiments").inner_text()
        assert "router/demo" in experiments and "baseline" in experiments
        assert "n=" in page.locator("#feedback-table").inner_text()
        # The savings panel: the auto requests' cost against their baselines, from the same
        # numbers /v1/analytics/savings serves, and the quality side's state.
        ledger = json.load(urllib.request.urlopen(f"{server.url}/v1/analytics/savings", timeout=10))["overall"]
        assert ledger["requests"] >= 10 and ledger["baseline_cost_usd"] > ledger["cost_usd"] > 0, ledger
        tiles_text = page.locator("#savings-tiles").inner_text()
        assert f"{100 * ledger['saved_share']:.1f} %" in tiles_text, tiles_text
        assert "not enough labels yet" in page.locator("#savings-quality").inner_text()

        # A filter changes the numbers: only the fast model's requests.
        page.select_option("#f-model", "mock/fast")
        page.wait_for_selector("body[data-loaded='2']", timeout=15000)
        fast = int(tile(page, "requests"))
        assert 0 < fast < n
        models = page.locator("#models-table").inner_text()
        assert "mock/fast" in models and "mock/smart" not in models
        page.select_option("#f-model", "")
        page.wait_for_selector("body[data-loaded='3']", timeout=15000)
        assert tile(page, "requests") == str(n)

        # Drill-down: the failover's attempt chain.
        page.fill("#drill-id", failover_id)
        page.click("#drill-go")
        page.wait_for_selector(f"#drill[data-request='{failover_id}']", timeout=10000)
        chain = page.locator("#drill-attempts").inner_text()
        assert "mock/flaky" in chain and "mock/fast" in chain and "served" in chain
        # Clicking a learned request in the list shows its ranked candidates.
        page.locator("#requests-table tr.clickable:has-text('auto')").first.click()
        page.wait_for_selector("#drill-decision", timeout=10000)
        assert "(chosen)" in page.locator("#drill-decision").inner_text()

        page.select_option("#f-window", "1h")
        page.wait_for_selector("body[data-loaded='4']", timeout=15000)
        shot = Path(os.environ.get("SWITCHYARD_SCREENSHOT", ROOT / "target" / "screenshots" / "dashboard.png"))
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert errors == [], f"JavaScript console errors: {errors}"
    finally:
        server.stop()


def test_dashboard_asks_for_the_router_key_when_keys_are_set(tmp_path, browser):
    default = subprocess.run([BIN, "default-config"], capture_output=True, text=True, check=True).stdout
    config = default.replace("[server]\n", '[server]\napi_keys_env = "SY_DASHBOARD_KEYS"\n', 1)
    server = DefaultServer(tmp_path, config, env={"SY_DASHBOARD_KEYS": "rk-dashboard"})
    try:
        n, _ = traffic(server.url, tmp_path / "logs", key="rk-dashboard")
        wait_for_rows(server.url, n, key="rk-dashboard")
        # The data needs the key; the page itself does not.
        with pytest.raises(urllib.error.HTTPError) as e:
            get_json(server.url + "/v1/analytics/traffic")
        assert e.value.code == 401
        errors = []
        page = open_page(browser, server.url, errors)
        page.wait_for_selector("#key-box:not([hidden])", timeout=10000)
        assert "router key" in page.locator("#status").inner_text()
        page.fill("#api-key", "rk-dashboard")
        page.locator("#api-key").dispatch_event("change")
        page.wait_for_selector("body[data-loaded]", timeout=15000)
        assert tile(page, "requests") == str(n)
        # Requests carry the key's id (a hash prefix), never the key.
        keys = [o for o in page.locator("#f-key option").all_inner_texts() if o != "all"]
        assert len(keys) == 1 and keys[0].startswith("key-") and "rk-dashboard" not in keys[0]
        # The browser's own 401s are the only console errors allowed here.
        assert all("401" in e for e in errors), errors
    finally:
        server.stop()
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.ndjson"))
    assert "rk-dashboard" not in logs
