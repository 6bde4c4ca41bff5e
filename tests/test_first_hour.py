"""What a new user meets first: configuration mistakes, `gateway check`, the logs.

Every command runs as a subprocess, as a user would run it. A mistake must end in one
line that names the variable (or file and table) to fix, with exit code 2.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_upstream import FakeUpstream, Reply
from tests.gateway_server import GatewayProcess, _clean_env, free_socket

PATIENCE = 60


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env={**_clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        cwd=cwd,
    )


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unreachable_database_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    port = free_socket()
    closed = port.getsockname()[1]
    port.close()
    url = f"postgresql://gateway:s3cret-pw@127.0.0.1:{closed}/agents"
    line = _one_clear_line(run("serve", env={"GATEWAY_DATABASE_URL": url}, cwd=tmp_path))
    assert "GATEWAY_DATABASE_URL" in line
    assert "s3cret-pw" not in line and "***" in line
    assert f"127.0.0.1:{closed}" in line


def test_wrong_database_login_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    base = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set")
    from sqlalchemy.engine import make_url

    url = make_url(base).set(username="no_such_role_h8c", password="s3cret-pw")
    raw = url.render_as_string(hide_password=False)
    line = _one_clear_line(run("serve", env={"GATEWAY_DATABASE_URL": raw}, cwd=tmp_path))
    assert "GATEWAY_DATABASE_URL" in line
    assert "no_such_role_h8c" in line
    assert "s3cret-pw" not in line


def test_a_database_url_that_is_no_url_names_the_variable(tmp_path: Path) -> None:
    env = {"GATEWAY_DATABASE_URL": "mysql://gateway@db/agents"}
    line = _one_clear_line(run("serve", env=env, cwd=tmp_path))
    assert line.count("GATEWAY_DATABASE_URL") == 1 and "mysql" in line


def test_a_missing_config_file_names_the_variable_that_points_at_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    line = _one_clear_line(run("models", env={"GATEWAY_CONFIG": str(missing)}))
    assert line.startswith("gateway: configuration error: GATEWAY_CONFIG:")
    assert str(missing) in line


def test_a_base_url_without_scheme_stops_start_up(tmp_path: Path) -> None:
    env = {"KIMI_API_KEY": "sk-x", "KIMI_BASE_URL": "127.0.0.1:8000"}
    line = _one_clear_line(run("serve", env=env, cwd=tmp_path))
    assert "KIMI_BASE_URL" in line and "127.0.0.1:8000" in line


def test_a_bad_base_url_in_the_file_names_the_file_and_provider(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(
        '[[providers]]\nname = "local"\nbase_url = "localhost:11434/v1"\n'
        'api_key_env = "LOCAL_KEY"\n'
    )
    line = _one_clear_line(run("--config", str(config), "models", env={"LOCAL_KEY": "k"}))
    assert "'local'" in line and str(config) in line and "base_url" in line


def test_an_alias_to_an_unknown_provider_stops_start_up(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[aliases]\nfast = "kimy/kimi-k2-turbo-preview"\n')
    line = _one_clear_line(run("--config", str(config), "serve", cwd=tmp_path))
    assert "fast" in line and "kimy" in line and str(config) in line


def test_a_bad_value_in_the_file_names_the_file_and_table(tmp_path: Path) -> None:
    config = tmp_path / "gw.toml"
    config.write_text('[[providers]]\nname = "deepseek"\nread_timeout = -1\n')
    line = _one_clear_line(run("--config", str(config), "models"))
    assert "read_timeout" in line and "[[providers]] 'deepseek'" in line
    assert str(config) in line


def test_check_names_the_key_variable_and_the_url(upstream: FakeUpstream) -> None:
    env = {"KIMI_API_KEY": "sk-wrong", "KIMI_BASE_URL": upstream.base_url}
    upstream.script_models(Reply.error(401, "invalid key"))
    result = run("check", env=env)
    assert result.returncode == 1
    assert "KIMI_API_KEY" in result.stdout
    assert upstream.base_url + "/models" in result.stdout
    assert "sk-wrong" not in result.stdout


def test_no_provider_enabled_lists_the_variables_that_enable_one(tmp_path: Path) -> None:
    result = run("check", cwd=tmp_path)
    assert result.returncode == 1
    for variable in ("KIMI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        assert variable in result.stderr


def _stderr_on_a_terminal(env: dict[str, str], until: bytes) -> bytes:
    """Run `gateway serve` with stderr on a pseudo-terminal; what it wrote up to `until`."""
    master, slave = pty.openpty()
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
        env={**_clean_env(), **env},
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + PATIENCE
        while until not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    out += os.read(master, 65536)
                except OSError:
                    break
    finally:
        proc.terminate()
        proc.wait(timeout=PATIENCE)
        os.close(master)
    return out


def test_logs_are_text_on_a_terminal_and_json_otherwise(tmp_path: Path) -> None:
    env = {"GATEWAY_DATA_DIR": str(tmp_path / "data"), "OPENAI_API_KEY": "sk-x"}
    terminal = _stderr_on_a_terminal(env, b"Application startup complete")
    lines = [line for line in terminal.decode().splitlines() if line.strip()]
    assert any("providers enabled" in line for line in lines), lines
    assert not any(line.lstrip().startswith("{") for line in lines), lines
    # Alembic's start-up chatter only shows at DEBUG.
    assert not any("alembic" in line for line in lines), lines

    # Through a pipe (a log collector), the same start-up is JSON, one object a line.
    piped = GatewayProcess(env).start(timeout=PATIENCE).stop()
    lines = [line for line in piped.splitlines() if line.strip()]
    assert any("providers enabled" in line for line in lines), lines
    assert all(line.startswith("{") for line in lines), lines
