"""`gateway mcp`: the MCP facade over stdio, launched as a desktop client would launch it."""

from __future__ import annotations

import json
import subprocess

import pytest
from mcp import Client

from tests.fake_upstream import Reply
from tests.mcp_clients import gateway_mcp


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_stdio_tools(gateway_env, gateway_config, upstream, mode):
    upstream.script(Reply.completion(content="over stdio"))
    async with Client(gateway_mcp(gateway_env, gateway_config), mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        models = await client.call_tool("list_models", {})
        reply = await client.call_tool("chat", {"model": "gpt-4o-mini", "prompt": "hi"})
        unknown = await client.call_tool("chat", {"model": "no-such-model", "prompt": "hi"})
    assert {"list_models", "chat"} <= names
    assert "openai/gpt-4o-mini" in [m["handle"] for m in models.structured_content["models"]]
    assert reply.content[0].text == "over stdio"
    assert reply.structured_content["model"] == "openai/gpt-4o-mini"
    assert unknown.is_error
    assert unknown.content[0].text == "model 'no-such-model' is not offered by any enabled provider"


def test_stdout_carries_only_protocol(gateway_env, gateway_config):
    params = gateway_mcp(gateway_env, gateway_config)
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    result = subprocess.run(
        [params.command, *params.args],
        input=json.dumps(init) + "\n",
        env=params.env,
        cwd=params.cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert lines, result.stderr
    assert [json.loads(line)["id"] for line in lines] == [1]
    assert "providers enabled: openai" in result.stderr
