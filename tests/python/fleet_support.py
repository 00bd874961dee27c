"""What the fleet tests share (tests/python/test_fleet*.py): replicas of the real binary over a
PostgreSQL database of their own and the shared Redis, and small clients for them. The
`fleet` fixture is in conftest.py."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import openai
from openai import OpenAI

from conftest import BIN, _start, render_config


PG = os.environ.get("SWITCHYARD_TEST_POSTGRES", "postgres://switchyard:switchyard@127.0.0.1:5432")
REDIS = os.environ.get("SWITCHYARD_TEST_REDIS", "redis://127.0.0.1:6379")


def psql(db, sql):
    out = subprocess.run(["psql", f"{PG}/{db}", "-qAtc", sql], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


class Fleet:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.db = "sy_" + uuid.uuid4().hex[:12]
        psql("postgres", f"CREATE DATABASE {self.db}")
        self.prefix = f"test-{uuid.uuid4().hex[:8]}:"
        self.mock, self.mock_url = _start(["mock-upstream", "--listen", "127.0.0.1:0"], r"listening on (http://\S+)")
        self.procs = []
        self.env = dict(os.environ, TEST_UPSTREAM_KEY="k", SY_PG=f"{PG}/{self.db}", SY_REDIS=REDIS)

    def config(self, name, store_extra='flush = "100ms"\n', redis=True, max_body_bytes=65536):
        store = f'[store]\npostgres_env = "SY_PG"\nredis_prefix = "{self.prefix}"\nkeys_refresh = "200ms"\n'
        if redis:
            store += 'redis_env = "SY_REDIS"\n'
        path = self.tmp / f"{name}.toml"
        text = render_config(self.mock_url, str(self.tmp / f"logs-{name}"), 'api_keys = ["rk-fleet"]')
        text = text.replace("max_body_bytes = 65536", f"max_body_bytes = {max_body_bytes}")
        path.write_text(text + "\n" + store + store_extra)
        return path

    def replica(self, name, store_extra='flush = "100ms"\n', env=None, redis=True, max_body_bytes=65536):
        cfg = self.config(name, store_extra, redis, max_body_bytes)
        proc = subprocess.Popen([BIN, "serve", "--config", str(cfg), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                stderr=open(self.tmp / f"{name}.err", "w"), text=True, env=dict(self.env, **(env or {})))
        line = proc.stdout.readline()
        m = re.search(r"listening on (http://\S+?) ", line)
        assert m, f"replica {name} did not start: {line!r} {(self.tmp / f'{name}.err').read_text()}"
        self.procs.append(proc)
        return m.group(1)

    def cli(self, *args, env=None):
        out = subprocess.run([BIN, *args, "--config", str(self.config("cli"))], capture_output=True, text=True,
                             env=dict(self.env, **(env or {})))
        assert out.returncode == 0, out.stderr
        return out.stdout

    def create_key(self, *args, env=None):
        out = self.cli("keys", "create", "--name", "test", *args, env=env)
        secret = out.strip().splitlines()[-1].split()[-1]
        key_id = json.loads(out[: out.rindex("}") + 1])["id"]
        return key_id, secret

    def create_key_in(self, pg_url, *args):
        """A key in another PostgreSQL than the fleet's."""
        return self.create_key(*args, env={"SY_PG": pg_url})

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=20)
        self.mock.kill()
        self.mock.wait()
        psql("postgres", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")


def client(url, key="unused"):
    return OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def chat(url, key, model="up/ok"):
    return client(url, key).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def accepted(url, key):
    """One request with the key; False while the replica has not loaded it yet (a key whose
    limits refuse the request is loaded)."""
    try:
        chat(url, key)
        return True
    except openai.RateLimitError:
        return True
    except openai.AuthenticationError:
        return False


def wait_for(check, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


PRICEY = """
[[models]]
id = "up/pricey"
upstream = "ok"
input_price_per_mtok = 0.0
output_price_per_mtok = 1000.0
"""


def get_json(url, path, key):
    req = urllib.request.Request(url + path, headers={"authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def status_of(url, path, key, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, headers={"authorization": f"Bearer {key}",
                                                                  "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
