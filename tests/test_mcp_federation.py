"""The MCP gateway: upstream MCP servers with `expose = true` federated at `/mcp`.

A real gateway (uvicorn) in front of real upstream MCP servers (our test server over
Streamable HTTP and over stdio), driven by the official `mcp` SDK client in both protocol
eras; results are compared with what the same upstream answers when called directly.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ToolsListChanged
from mcp.types import SERVER_INFO_META_KEY

from tests.gateway_server import GatewayServer
from tests.mcp_clients import gateway_mcp, mcp_client
from tests.mcp_test_server import McpTestServerProcess, free_port, stdio_command

SHORT = 0.5  # the upstreams' tool timeout; only `hang` ever waits for it
SECRET = "s3cret-upstream-token"
UPSTREAM_TOOLS = ["media", "weather", "grow", "echo", "hang", "fail", "dotted.name", "crash"]


@pytest.fixture
def remote() -> Iterator[McpTestServerProcess]:
    with McpTestServerProcess(require_header=f"X-Token={SECRET}") as server:
        yield server


def federation_config(tmp_path: Path, remote_url: str, **extra: str) -> Path:
    command, args = stdio_command()
    path = tmp_path / "federated.toml"
    path.write_text(
        f"""
[[mcp_servers]]
name = "tools"
url = "{remote_url}"
headers = {{ X-Token = "{SECRET}" }}
timeout = {SHORT}
expose = true

[[mcp_servers]]
name = "local"
command = {json.dumps(command)}
args = {json.dumps(args)}
timeout = {SHORT}
expose = true

[[mcp_servers]]
name = "hidden"
url = "{remote_url}"
headers = {{ X-Token = "{SECRET}" }}

[[mcp_servers]]
name = "down"
url = "http://127.0.0.1:9/mcp"
timeout = {SHORT}
expose = true
"""
    )
    return path


@pytest.fixture
def fed_gateway(make_gateway, remote, tmp_path: Path) -> Iterator[GatewayServer]:
    gateway: GatewayServer = make_gateway(config=federation_config(tmp_path, remote.url))
    yield gateway
    gateway.stop()  # before the upstream, which would wait for our open connections


async def listed(client: Client) -> dict[str, Any]:
    return {t.name: t for t in (await client.list_tools()).tools}


async def wait_for_tools(client: Client, *names: str) -> dict[str, Any]:
    """Exposed servers connect in the background after start-up; wait until they are in."""
    with anyio.fail_after(30):
        while True:
            tools = await listed(client)
            if all(n in tools for n in names):
                return tools
            await anyio.sleep(0.05)


@contextlib.asynccontextmanager
async def direct(remote: McpTestServerProcess) -> AsyncIterator[Client]:
    """The upstream without the gateway, for comparison."""
    async with (
        httpx2.AsyncClient(headers={"X-Token": SECRET}) as http,
        Client(streamable_http_client(remote.url, http_client=http)) as client,
    ):
        yield client


def wire(result: Any) -> dict[str, Any]:
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")


def unstamped(result: Any) -> dict[str, Any]:
    """A result as sent, without the `serverInfo` stamp naming the server that answered."""
    data = wire(result)
    meta = data.pop("_meta", {})
    meta.pop(SERVER_INFO_META_KEY, None)
    return {**data, "_meta": meta} if meta else data


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_listed_beside_ours_unchanged(fed_gateway, remote, mode):
    async with mcp_client(fed_gateway.url, mode=mode) as client:
        tools = await wait_for_tools(client, "tools__echo", "local__echo")
    async with direct(remote) as upstream:
        originals = {t.name: t for t in (await upstream.list_tools()).tools}

    assert {"list_models", "chat", "list_agents"} <= set(tools)
    for server in ("tools", "local"):
        assert [n for n in tools if n.startswith(f"{server}__")] == [
            f"{server}__{n}" for n in UPSTREAM_TOOLS
        ]
    # Not exposed, or down: nothing listed, and the gateway started anyway.
    assert not any(n.startswith(("hidden__", "down__")) for n in tools)
    for name, original in originals.items():
        proxied = wire(tools[f"tools__{name}"])
        assert proxied.pop("name") == f"tools__{name}"
        expected = wire(original)
        expected.pop("name")
        assert proxied == expected
    assert tools["tools__weather"].output_schema["properties"]["celsius"]["type"] == "number"
    assert tools["tools__media"].annotations.read_only_hint is True
    assert SECRET not in json.dumps([wire(t) for t in tools.values()])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_results_come_back_unchanged(fed_gateway, remote, mode):
    async with direct(remote) as upstream:
        expected_media = unstamped(await upstream.call_tool("media", {}))
        expected_weather = unstamped(await upstream.call_tool("weather", {"city": "Oslo"}))
        expected_fail = unstamped(await upstream.call_tool("fail", {"reason": "disk full"}))
    async with mcp_client(fed_gateway.url, mode=mode) as client:
        await wait_for_tools(client, "tools__media", "local__media")
        raw_media = await client.call_tool("tools__media", {})
        stdio_media = unstamped(await client.call_tool("local__media", {}))
        weather = await client.call_tool("tools__weather", {"city": "Oslo"})
        failed = unstamped(await client.call_tool("tools__fail", {"reason": "disk full"}))

    media = unstamped(raw_media)
    kinds = [block["type"] for block in media["content"]]
    assert kinds == ["text", "image", "audio", "resource", "resource_link"]
    assert media == expected_media
    assert stdio_media == expected_media
    assert media["_meta"] == {"test/trace": "abc"}
    if mode == "auto":  # 2026-07-28 results name the server that answered: the gateway
        assert raw_media.meta[SERVER_INFO_META_KEY]["name"] == "agent-gateway"
    assert weather.structured_content == {"city": "Oslo", "celsius": 21.5}
    assert unstamped(weather) == expected_weather
    assert failed == expected_fail and failed["isError"] is True


async def test_a_failing_upstream_costs_only_its_own_tools(fed_gateway, remote):
    async with mcp_client(fed_gateway.url) as client:
        await wait_for_tools(client, "tools__echo", "local__echo")
        hung = await client.call_tool("tools__hang", {})
        down = await client.call_tool("down__echo", {"text": "x"})
        still = await client.call_tool("tools__echo", {"text": "after"})
        ours = await client.call_tool("list_models", {})
        remote.stop()
        gone = await client.call_tool("tools__echo", {"text": "anyone?"})
        local = await client.call_tool("local__echo", {"text": "here"})

    assert hung.is_error
    assert hung.content[0].text == f"MCP tool 'tools__hang' timed out after {SHORT:g} s"
    assert down.is_error and down.content[0].text.startswith("MCP server 'down' is unavailable")
    assert not still.is_error and still.content[0].text == "echoed: after"
    assert not ours.is_error
    assert gone.is_error
    assert not local.is_error and local.content[0].text == "echoed: here"


async def test_calls_are_counted_and_logged_without_secrets(fed_gateway, caplog):
    caplog.set_level(logging.INFO, logger="gateway.mcp.federation")
    async with mcp_client(fed_gateway.url) as client:
        await wait_for_tools(client, "tools__echo")
        await client.call_tool("tools__echo", {"text": "private words"})
        await client.call_tool("tools__fail", {})
        await client.call_tool("tools__hang", {})
    metrics = httpx2.get(fed_gateway.url + "/metrics").text
    for outcome in ("success", "tool_error", "timeout"):
        assert (
            f'gateway_mcp_upstream_calls_total{{outcome="{outcome}",server="tools"}} 1.0'
        ) in metrics
    assert 'gateway_mcp_upstream_call_duration_seconds_count{server="tools"} 3.0' in metrics
    lines = [r for r in caplog.records if r.name == "gateway.mcp.federation"]
    fields = [r.fields for r in lines]  # type: ignore[attr-defined]
    assert [(f["tool"], f["outcome"]) for f in fields] == [
        ("tools__echo", "success"),
        ("tools__fail", "tool_error"),
        ("tools__hang", "timeout"),
    ]
    assert all(f["server"] == "tools" and f["duration_ms"] >= 0 for f in fields)
    everything = metrics + json.dumps(fields) + caplog.text
    assert "private words" not in everything
    assert SECRET not in everything


async def test_upstream_list_changes_reach_our_listeners(fed_gateway):
    async with mcp_client(fed_gateway.url) as client:
        await wait_for_tools(client, "tools__grow")
        async with client.listen(tools_list_changed=True) as subscription:
            grew = await client.call_tool("tools__grow", {})
            assert grew.content[0].text == "grew"
            with anyio.fail_after(10):
                async for event in subscription:
                    if isinstance(event, ToolsListChanged):
                        break
        tools = await listed(client)
        assert "tools__grown" in tools
        called = await client.call_tool("tools__grown", {})
    assert called.content[0].text == "grown ok"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_resources_and_prompts_federated(fed_gateway, mode):
    async with mcp_client(fed_gateway.url, mode=mode) as client:
        await wait_for_tools(client, "tools__echo", "local__echo")
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
        today = await client.read_resource("test://notes/today")
        monday = await client.read_resource("test://notes/monday")
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        review = await client.get_prompt("tools__review", {"code": "x = 1"})

    assert {(r.name, str(r.uri)) for r in resources} == {
        ("tools__today", "test://notes/today"),
        ("local__today", "test://notes/today"),
    }
    assert {t.name for t in templates} == {"tools__note", "local__note"}
    assert today.contents[0].text == "buy milk"
    assert monday.contents[0].text == "note of monday"
    assert prompts["tools__review"].arguments[0].name == "code"
    assert review.messages[0].content.text == "Please review: x = 1"


ADMIN = "admin-key-of-the-federation-test"


async def test_key_tool_globs_filter_list_and_call(make_gateway, remote, tmp_path):
    gateway = make_gateway(
        {"GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_API_KEYS": "static-key"},
        config=federation_config(tmp_path, remote.url),
    )
    created = httpx2.post(
        gateway.url + "/v1/keys",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"name": "team-a", "mcp_tools": ["tools__echo", "tools__w*", "list_models"]},
    )
    assert created.status_code == 201, created.text
    async with mcp_client(gateway.url, key=created.json()["key"]) as client:
        tools = await wait_for_tools(client, "tools__echo")
        denied = await client.call_tool("tools__media", {})
        denied_ours = await client.call_tool("list_agents", {})
        allowed = await client.call_tool("tools__echo", {"text": "ok"})
    async with mcp_client(gateway.url, key="static-key") as client:
        everything = await wait_for_tools(client, "tools__media", "local__media")
    assert sorted(tools) == ["list_models", "tools__echo", "tools__weather"]
    for result in (denied, denied_ours):
        assert result.is_error
        assert result.meta["agent-gateway/error"]["code"] == "tool_not_allowed"
    assert allowed.content[0].text == "echoed: ok"
    assert {"list_agents", "chat"} <= set(everything)


async def test_an_upstream_that_starts_later_is_picked_up(make_gateway, tmp_path):
    port = free_port()
    gateway = make_gateway(config=federation_config(tmp_path, f"http://127.0.0.1:{port}/mcp"))
    async with mcp_client(gateway.url) as client:
        tools = await wait_for_tools(client, "local__echo")
        assert not any(n.startswith("tools__") for n in tools)
        with McpTestServerProcess(require_header=f"X-Token={SECRET}", port=port):
            await wait_for_tools(client, "tools__echo")
            result = await client.call_tool("tools__echo", {"text": "late"})
    assert result.content[0].text == "echoed: late"


async def test_stdio_gateway_federates_too(gateway_env, remote, tmp_path):
    config = federation_config(tmp_path, remote.url)
    async with Client(gateway_mcp(gateway_env, config)) as client:
        await wait_for_tools(client, "tools__echo", "local__echo")
        result = await client.call_tool("local__weather", {"city": "Rome"})
    assert result.structured_content == {"city": "Rome", "celsius": 21.5}
