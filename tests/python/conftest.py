"""Fixtures: the real `switchyard` binary on loopback in front of `switchyard mock-upstream`
(a scripted OpenAI/Anthropic-compatible upstream), both on free ports."""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(os.environ.get("SWITCHYARD_BIN", ROOT / "target" / "debug" / "switchyard")).resolve())

# The config shared with the Rust integration tests; the SDK suite adds its `support` router.
CONFIG = (ROOT / "tests" / "fixtures" / "gateway.toml").read_text()
EXTRA = """
[routers.support]
routes = [{ name = "free", when = 'plan == "free"', model = "mock/fast" }]
default = { variants = [{ name = "a", model = "mock/fast", weight = 50 }, { name = "b", model = "mock/smart", weight = 50 }] }

[[models]]
id = "up/a"
upstream = "fast-a"
[[models]]
id = "up/b"
upstream = "fast-b"

[routers.sorted]
default = { model = "up/a", fallbacks = ["up/b"], sort = "ttft" }

# An OpenAI-kind upstream that serves the Responses API itself: /v1/responses passes through.
[providers.native]
kind = "openai"
base_url = "{MOCK}"
api_key_env = "TEST_UPSTREAM_KEY"
responses = true
[[models]]
id = "native/ok"
upstream = "ok"
[[models]]
id = "native/hang-ttft"
upstream = "hang_ttft"
[[models]]
id = "native/drop"
upstream = "drop_mid"

[routers.vision]
routes = [{ name = "images", when = 'request.has_images', model = "anth/claude" }, { name = "audio", when = 'request.has_audio', model = "up/second" }]
default = { model = "up/ok" }
"""


def render_config(mock, logs, server_extra=""):
    """The shared config with its placeholders filled in."""
    values = {"MOCK": mock, "LOGS": logs, "LOG_TEXT": "true", "SERVER_EXTRA": server_extra}
    return re.sub(r"\{([A-Z_]+)\}", lambda m: values[m.group(1)], CONFIG.replace("{EXTRA}", EXTRA))



def _start(args, pattern, env=None, stderr=subprocess.DEVNULL):
    proc = subprocess.Popen(
        [BIN, *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    match = re.search(pattern, line)
    if not match:
        proc.kill()
        raise RuntimeError(f"{args[0]} did not start: {line!r}")
    return proc, match.group(1)


class Gateway:
    def __init__(self, tmp_path, server_extra=""):
        self.mock, self.mock_url = _start(
            ["mock-upstream", "--listen", "127.0.0.1:0"], r"listening on (http://\S+)"
        )
        self.logs = tmp_path / "logs"
        config = tmp_path / "switchyard.toml"
        config.write_text(
            render_config(self.mock_url, str(self.logs), server_extra)
        )
        env = dict(os.environ, TEST_UPSTREAM_KEY="sk-upstream-secret", SY_TEST_ROUTER_KEYS="rk-1")
        self.stderr_path = tmp_path / "stderr.log"
        self._stderr = open(self.stderr_path, "w")
        self.proc, self.url = _start(
            ["serve", "--config", str(config), "--listen", "127.0.0.1:0"],
            r"listening on (http://\S+?) ",
            env=env,
            stderr=self._stderr,
        )
        self.base_url = self.url + "/v1"

    def stop(self):
        """SIGTERM: drain and flush; returns the log records."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        self.mock.kill()
        self.mock.wait()
        self._stderr.close()
        records = []
        for f in sorted(self.logs.glob("requests-*.ndjson")):
            records += [json.loads(line) for line in f.read_text().splitlines() if line]
        return records

    def mock_requests(self):
        import urllib.request

        with urllib.request.urlopen(self.mock_url.replace("/v1", "") + "/_mock/requests") as r:
            return json.loads(r.read())


@pytest.fixture
def gateway(tmp_path):
    gw = Gateway(tmp_path)
    yield gw
    if gw.proc.poll() is None:
        gw.stop()


@pytest.fixture
def keyed_gateway(tmp_path):
    gw = Gateway(tmp_path, server_extra='api_keys_env = "SY_TEST_ROUTER_KEYS"')
    yield gw
    if gw.proc.poll() is None:
        gw.stop()


class DefaultServer:
    """`switchyard serve` on the embedded default config (or the config text given), run in a
    scratch directory that links the repository's models/ (the default `auto` artifact)."""

    def __init__(self, tmp_path, config_text=None, env=None):
        tmp_path.mkdir(parents=True, exist_ok=True)
        (tmp_path / "models").symlink_to(ROOT / "models")
        args = [BIN, "serve", "--listen", "127.0.0.1:0"]
        if config_text is not None:
            (tmp_path / "switchyard.toml").write_text(config_text)
            args += ["--config", "switchyard.toml"]
        self.stderr = open(tmp_path / "stderr.log", "w")
        self.proc = subprocess.Popen(
            args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            env=dict(os.environ, **(env or {})),
        )
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+?) ", line)
        assert m, f"server did not start: {line!r}"
        self.url = m.group(1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        self.stderr.close()


@pytest.fixture
def fleet(tmp_path):
    """Replicas of the real binary over a PostgreSQL database of their own and the shared Redis
    (tests/python/fleet_support.py), closed after the test."""
    from fleet_support import Fleet

    f = Fleet(tmp_path)
    yield f
    f.close()
