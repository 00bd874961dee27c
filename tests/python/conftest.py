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
BIN = os.environ.get("SWITCHYARD_BIN", str(ROOT / "target" / "debug" / "switchyard"))

CONFIG = """
[server]
timeout = "3s"
ttft_timeout = "500ms"
max_body_bytes = 65536
{server_extra}

[logging]
dir = "{logs}"

[providers.up]
kind = "openai"
base_url = "{mock}"
api_key_env = "SY_TEST_UPSTREAM_KEY"

[providers.anth]
kind = "anthropic"
base_url = "{mock}"
api_key_env = "SY_TEST_UPSTREAM_KEY"

[providers.mock]
kind = "mock"

[[models]]
id = "up/ok"
input_price_per_mtok = 1.0
output_price_per_mtok = 2.0
[[models]]
id = "up/429"
upstream = "status:429"
[[models]]
id = "up/500"
upstream = "status:500"
[[models]]
id = "up/hang-ttft"
upstream = "hang_ttft"
[[models]]
id = "up/drop"
upstream = "drop_mid"
[[models]]
id = "anth/claude"
upstream = "claude-test"
[[models]]
id = "mock/fast"
[[models]]
id = "mock/smart"

[routers.support]
routes = [{{ name = "free", when = 'plan == "free"', model = "mock/fast" }}]
default = {{ variants = [{{ name = "a", model = "mock/fast", weight = 50 }}, {{ name = "b", model = "mock/smart", weight = 50 }}] }}
"""


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
            CONFIG.format(mock=self.mock_url, logs=self.logs, server_extra=server_extra)
        )
        env = dict(os.environ, SY_TEST_UPSTREAM_KEY="sk-upstream-secret", SY_TEST_ROUTER_KEYS="rk-1")
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
