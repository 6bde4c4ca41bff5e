"""The `gateway` command as an operator runs it (subprocesses, real fake upstream)."""

from __future__ import annotations

import subprocess
import sys

import httpx2
import openai
import pytest

from tests.fake_upstream import Reply
from tests.gateway_server import GatewayProcess, _clean_env


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env={**_clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invalid_config_value_exits_2_naming_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nport = "eighty"\n')
    result = run("--config", str(bad), "models")
    assert result.returncode == 2
    assert "port" in result.stderr


def test_invalid_env_value_exits_2(tmp_path):
    result = run("serve", env={"GATEWAY_MAX_BODY_BYTES": "lots"})
    assert result.returncode == 2 and "GATEWAY_MAX_BODY_BYTES" in result.stderr


def test_unparseable_config_and_unknown_field(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[gateway\n")
    assert run("--config", str(broken), "models").returncode == 2
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[gateway]\nprot = 1\n")
    result = run("--config", str(unknown), "models")
    assert result.returncode == 2 and "prot" in result.stderr


def test_refuses_unauthenticated_public_bind():
    result = run("serve", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "GATEWAY_API_KEYS" in result.stderr


def test_models_table(upstream):
    env = {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": upstream.base_url}
    result = run("models", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["HANDLE", "PROVIDER", "CONTEXT", "SOURCE"]
    assert ["openai/gpt-4o", "openai", "128000", "live"] in [line.split() for line in lines]
    assert "KIMI_API_KEY" in result.stderr


def test_check_names_the_failing_provider(upstream):
    env = {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": upstream.base_url}
    assert run("check", env=env).returncode == 0
    upstream.script_models(Reply.error(401, "bad key sk-x"))
    result = run("check", env=env)
    assert result.returncode == 1
    assert "openai" in result.stdout and "sk-x" not in result.stdout


def test_serve_as_a_process(upstream, tmp_path):
    env = {
        "OPENAI_API_KEY": "sk-x",
        "OPENAI_BASE_URL": upstream.base_url,
        "GATEWAY_DATA_DIR": str(tmp_path),
        "GATEWAY_API_KEYS": "gk",
    }
    with GatewayProcess(env) as gw:
        c = openai.OpenAI(base_url=gw.base_url, api_key="gk", max_retries=0)
        reply = c.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "p"}]
        )
        assert reply.choices[0].message.content == "echo: p"
        assert httpx2.get(gw.base_url + "/models").status_code == 401


def test_command_line_flags_win_over_the_environment(monkeypatch):
    from gateway import cli
    from gateway.settings import ConfigError

    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.setenv("GATEWAY_HOST", "0.0.0.0")
    monkeypatch.setenv("GATEWAY_PORT", "9000")
    args = cli._parser().parse_args(["serve", "--host", "127.0.0.1", "--port", "8081"])
    settings = cli._settings(args)
    assert (settings.host, settings.port) == ("127.0.0.1", 8081)
    # Without flags the environment still wins over the defaults.
    assert cli._settings(cli._parser().parse_args(["serve"])).port == 9000
    bad = cli._parser().parse_args(["serve", "--workers", "0"])
    with pytest.raises(ConfigError, match="workers"):
        cli._settings(bad)
