"""The model catalog from the command line: `switchyard models` prints it, and a config whose
`[[models]]` entries are only ids gets the catalog's prices (explicit values override)."""

import json
import subprocess

from conftest import BIN


def test_models_command_prints_the_dated_catalog():
    out = json.loads(subprocess.run([BIN, "models", "--json"], capture_output=True, text=True, check=True).stdout)
    ids = {m["id"] for m in out["models"]}
    assert out["date"].startswith("20")
    for provider in ["openai", "anthropic", "google", "mistral", "deepseek", "xai", "groq", "together", "deepinfra"]:
        assert any(i.startswith(provider + "/") for i in ids), provider
    table = subprocess.run([BIN, "models"], capture_output=True, text=True, check=True).stdout
    assert "openai/gpt-4o-mini" in table and "0.150" in table


def test_a_config_of_bare_ids_gets_catalog_prices(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[providers.openai]\nkind = "openai"\n[[models]]\nid = "openai/gpt-4o-mini"\n'
                   '[[models]]\nid = "openai/gpt-4o"\ninput_price_per_mtok = 1.0\n')
    out = subprocess.run([BIN, "check-config", "--config", str(cfg)], capture_output=True, text=True, check=True).stdout
    assert "openai/gpt-4o-mini (upstream \"gpt-4o-mini\", $0.15/$0.6 per Mtok)" in out
    assert "openai/gpt-4o (upstream \"gpt-4o\", $1/$10 per Mtok)" in out
