"""Codex (the real CLI, `codex exec`) → gateway `/v1/responses` → fake Kimi upstream.

Needs the npm package `@openai/codex`: `codex` on the PATH, or its path in `CODEX_BIN`.
Its home (`CODEX_HOME`) is a temporary directory holding only a `[model_providers]`
entry for the gateway, so no user configuration or login is read. Codex runs in its
default configuration: `store: false` with the whole history each turn, its
`web_search` and sub-agent (`namespace`) tools, which the gateway drops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.fake_upstream import FakeUpstream, Reply, RequestRecord
from tests.gateway_server import GatewayServer
from tests.support.tools import missing

KEY = "codex-static-key-1234"


def codex_binary() -> str:
    path = os.environ.get("CODEX_BIN") or shutil.which("codex")
    if not path:
        missing("Codex not installed (npm i -g @openai/codex, or set CODEX_BIN)")
    return path


def scripted_kimi(record: RequestRecord) -> Reply:
    """Run a shell command with Codex's shell tool (thinking first), then answer with
    what the command printed: a tool round trip whatever else Codex asks."""
    body = record.json if isinstance(record.json, dict) else {}
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return Reply.completion(f"The command printed: {last.get('content')!s}"[-200:])
    tools = {t["function"]["name"] for t in body.get("tools") or ()}
    name = "exec_command" if "exec_command" in tools else "shell"
    arguments = (
        {"cmd": "echo hello > hello.txt && cat hello.txt"}
        if name == "exec_command"
        else {"command": ["bash", "-lc", "echo hello > hello.txt && cat hello.txt"]}
    )
    return Reply.completion(
        reasoning_content="I will write the file.",
        tool_calls=[{"id": "call_sh1", "name": name, "arguments": arguments}],
    )


def test_codex_runs_a_shell_tool_round_trip_through_the_gateway(
    upstream: FakeUpstream, make_gateway: Callable[..., GatewayServer], tmp_path: Path
) -> None:
    codex = codex_binary()
    upstream.models = ["kimi-k2.6"]
    upstream.script(scripted_kimi, scripted_kimi)
    gw = make_gateway(
        {
            "KIMI_API_KEY": "sk-upstream",
            "KIMI_BASE_URL": upstream.base_url,
            "GATEWAY_API_KEYS": KEY,
        }
    )
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (home / "config.toml").write_text(
        f"""
model = "kimi/kimi-k2.6"
model_provider = "gateway"
model_context_window = 262144

[model_providers.gateway]
name = "agent-gateway"
base_url = "{gw.base_url}"
env_key = "GATEWAY_KEY"
wire_api = "responses"
"""
    )
    prompt = "Create hello.txt containing hello, then tell me what it says."
    result = subprocess.run(
        [
            codex,
            "exec",
            "--skip-git-repo-check",
            "--sandbox",
            "workspace-write",
            "-C",
            str(work),
            prompt,
        ],
        env={**os.environ, "CODEX_HOME": str(home), "GATEWAY_KEY": KEY},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (work / "hello.txt").read_text() == "hello\n"
    assert "The command printed:" in result.stdout
    first, second = (r.json for r in upstream.chat_requests[-2:])
    # Codex's hosted tools were dropped; its own function tools went upstream.
    names = {t["function"]["name"] for t in first["tools"]}
    assert "web_search" not in names and names
    # The second step carried the call, its reasoning and the command's output back.
    assistant = next(m for m in second["messages"] if m.get("tool_calls"))
    assert assistant["reasoning_content"] == "I will write the file."
    assert assistant["tool_calls"][0]["id"] == "call_sh1"
    tool = next(m for m in second["messages"] if m["role"] == "tool")
    assert "hello" in tool["content"]
