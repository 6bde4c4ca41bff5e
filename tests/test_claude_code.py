"""Claude Code (the real CLI, headless) → gateway `/v1/messages` → fake Kimi upstream.

Needs the npm package `@anthropic-ai/claude-code`: `claude` on the PATH, or its path
in `CLAUDE_CODE_BIN`. It runs offline against `ANTHROPIC_BASE_URL`; its home is a
temporary directory, so no user configuration or login is read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.fake_upstream import FakeUpstream, Reply, RequestRecord
from tests.support.tools import missing

MODEL = "kimi/kimi-k2.6"
SECRET = "the tool read this: 4242"


def claude_binary() -> str:
    path = os.environ.get("CLAUDE_CODE_BIN") or shutil.which("claude")
    if not path:
        missing(
            "Claude Code not installed (npm i -g @anthropic-ai/claude-code, or set CLAUDE_CODE_BIN)"
        )
    return path


def scripted_kimi(secret: Path):
    """Read the file with Claude Code's `Read` tool, thinking first, then answer with
    what the tool returned: a tool round trip whatever else Claude Code asks."""

    def reply(record: RequestRecord) -> Reply:
        body = record.json if isinstance(record.json, dict) else {}
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        tools = {t["function"]["name"] for t in body.get("tools") or ()}
        if last.get("role") == "tool":
            return Reply.completion(f"The file says: {last.get('content')}")
        if "Read" in tools:
            call = {"id": "call_read_1", "name": "Read", "arguments": {"file_path": str(secret)}}
            return Reply.completion(
                "Let me read it.", tool_calls=[call], reasoning_content="I should read the file."
            )
        return Reply.completion("ok")

    return reply


def run_claude(gateway: Any, workdir: Path, home: Path, prompt: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=gateway.url,
        ANTHROPIC_API_KEY="gw-claude",
        ANTHROPIC_MODEL=MODEL,
        ANTHROPIC_DEFAULT_HAIKU_MODEL=MODEL,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
    )
    done = subprocess.run(
        [claude_binary(), "-p", prompt, "--output-format", "json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    return json.loads(done.stdout)


def test_claude_code_tool_round_trip_on_kimi(make_gateway, tmp_path):
    claude_binary()
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    secret = workdir / "secret.txt"
    secret.write_text(SECRET + "\n")
    with FakeUpstream(models=["kimi-k2.6"]) as kimi:
        kimi.script(*[scripted_kimi(secret)] * 20)
        gateway = make_gateway(
            {
                "KIMI_API_KEY": "sk-kimi",
                "KIMI_BASE_URL": kimi.base_url,
                "GATEWAY_API_KEYS": "gw-claude",
            }
        )
        result = run_claude(gateway, workdir, home, "What is in secret.txt?")
        requests = [r.json for r in kimi.chat_requests]
    assert result["is_error"] is False
    assert SECRET in result["result"]
    assert result["num_turns"] >= 2
    with_result = next(r for r in requests if r["messages"][-1]["role"] == "tool")
    messages = with_result["messages"]
    assert SECRET in messages[-1]["content"]
    call = messages[-2]
    assert call["role"] == "assistant" and call["tool_calls"][0]["id"] == "call_read_1"
    # The thinking block Claude Code got went back as Kimi's reasoning_content.
    assert call["reasoning_content"] == "I should read the file."
    for request in requests:
        assert request["model"] == "kimi-k2.6"
        # Its system prompt and environment stay system instructions, never a user turn.
        roles = [m["role"] for m in request["messages"]]
        assert roles[0] == "system" and "system" not in roles[1:]
        assert "x-anthropic-billing-header" not in request["messages"][0]["content"]
        assert any(
            "What is in secret.txt?" in str(m["content"])
            for m in request["messages"]
            if m["role"] == "user"
        )
