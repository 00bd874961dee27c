"""The real gateway, driven as a user would: its config for a round, the server process, and
a round of requests with the simulated users' feedback."""

import json
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from .worlds import DEFAULT_PRIOR, ROOT


def http(base, path, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(world, knob, explore, models_dir, logs_dir, port, round_no=None, onboard=0.0):
    """The server's config for a round (default: the last, every model present): every model
    of the world served by a mock provider named by its id's prefix, the cold-start router, and
    `auto` over the models present in that round, a model without data on its prior."""
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        "[logging]",
        f'dir = "{logs_dir}"',
        "log_text = true",
    ]
    for provider in sorted({i.split("/")[0] for i in world.ids}):
        lines += [f"[providers.{provider}]", 'kind = "mock"']
    for m in world.models:
        lines += [
            "[[models]]",
            f'id = "{m["id"]}"',
            f'input_price_per_mtok = {m["input_per_mtok"]}',
            f'output_price_per_mtok = {m["output_per_mtok"]}',
            "context_window = 32768",
            "max_output_tokens = 4096",
        ]
    present0 = world.present(0)
    weights = [100 // len(present0)] * len(present0)
    weights[0] += 100 - sum(weights)
    variants = ", ".join(
        f'{{ name = "v{i}", model = "{m}", weight = {w} }}' for i, (m, w) in enumerate(zip(present0, weights))
    )
    lines += ["[routers.coldstart]", f"default = {{ variants = [{variants}] }}"]
    present = world.present(world.spec["rounds"] - 1 if round_no is None else round_no)
    priors = {m["id"]: m.get("prior", DEFAULT_PRIOR) for m in world.models if m["id"] in present}
    lines += [
        "[auto]",
        f'artifact = "{models_dir}"',
        f'default_knob = "{knob}"',
        "candidates = [" + ", ".join(f'"{i}"' for i in present) + "]",
        f"explore = {explore}",
        f"onboard = {onboard}",
        # A seed per run and round: every round starts a server, whose draws would otherwise
        # repeat the last round's (the same decisions explored, round after round).
        f"explore_seed = {world.spec['seed'] * 1000 + (round_no or 0)}",
        "watch = true",
        "unfamiliar = \"predict\"",
    ]
    lines.append("[auto.priors]")
    lines += [f'"{k}" = {{ quality = {v} }}' for k, v in priors.items()]
    return "\n".join(lines) + "\n"


class Server:
    def __init__(self, binary, cfg_path, port, log_path):
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--config", str(cfg_path)], cwd=ROOT, stdout=self.log, stderr=self.log
        )
        for _ in range(200):
            try:
                if http(self.base, "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"the server did not start; see {log_path}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def route(server, world, text, sig, cost_weight):
    """The server's deterministic decision for a prompt at a cost weight (`/v1/route`, no
    exploration), with every candidate's scores."""
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], "router": {"cost_weight": cost_weight}, "metadata": {"explore": False, **world.metadata(sig)}}
    s, v = http(server.base, "/v1/route", body)
    if s != 200:
        raise SystemExit(f"/v1/route failed ({s}): {v}")
    return v


def serve_round(server, world, round_no, prompts, knob_model):
    """Serves the prompts; posts feedback; returns per-request records."""

    def one(i_p):
        i, (text, topic, d, sig) = i_p
        body = {"model": knob_model, "messages": [{"role": "user", "content": text}], "user": f"r{round_no}-u{i}", "metadata": world.metadata(sig)}
        status, v = http(server.base, "/v1/chat/completions", body)
        if status != 200:
            raise SystemExit(f"request failed ({status}): {v}")
        model = v["model"]
        q = world.quality(model, topic, d, sig)
        rng = random.Random(world.spec["seed"] * 1_000_003 + round_no * 10_007 + i)
        good = 1.0 if rng.random() < q else 0.0
        answered = rng.random() < world.spec["feedback_rate"]
        if answered:
            s, fv = http(server.base, "/v1/feedback", {"request_id": v["metadata"]["request_id"], "score": good})
            if s != 200:
                raise SystemExit(f"feedback failed ({s}): {fv}")
        routing = v["metadata"].get("routing", {})
        return {
            "model": model,
            "true_quality": q,
            "feedback": good if answered else None,
            "cost_usd": v["metadata"]["cost_usd"],
            "world_cost": world.cost(model, text),
            "text": text,
            "topic": topic,
            "d": d,
            "sig": sig,
            "explored": routing.get("exploration", {}).get("explored", False),
            "onboarding": routing.get("exploration", {}).get("onboarding", False),
        }

    # One at a time: the log order, the exploration draws and so the next artifact are the same
    # on every run.
    return [one(x) for x in enumerate(prompts)]
