"""Agents over MCP (`ask_<name>`, `send_message`, `create_agent`, `list_agents`), and agents
using an external MCP server's tools, against a real gateway and the fake upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client

from tests.fake_upstream import Reply
from tests.mcp_clients import gateway_mcp, mcp_client
from tests.mcp_test_server import McpTestServerProcess, stdio_command

MODEL = "openai/gpt-4o-mini"
SHORT = 0.5  # the external servers' tool timeout; only `hang` ever waits for it


def tool_names(listing) -> list[str]:
    return [t.name for t in listing.tools]


def rest_agent(gateway, **body) -> dict:
    r = httpx2.post(gateway.base_url + "/agents", json={"model": MODEL, **body})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_create_agent_then_ask_it_with_progress(gateway, upstream, mode):
    upstream.script(
        Reply.completion(
            tool_calls=[
                {
                    "name": "core_memory_append",
                    "arguments": {"label": "human", "content": "likes tea"},
                }
            ]
        ),
        Reply.completion(content="Noted, tea it is."),
    )
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with mcp_client(gateway.url, mode=mode) as client:
        assert "ask_helper" not in tool_names(await client.list_tools())
        created = await client.call_tool(
            "create_agent",
            {
                "name": "helper",
                "model": MODEL,
                "description": "Remembers what you like.",
                "memory": {"human": "Name: Bob"},
                "system": "Be brief.",
            },
        )
        assert not created.is_error, created.content
        assert created.structured_content["tool"] == "ask_helper"
        assert created.structured_content["memory_blocks"] == [
            {"label": "human", "value": "Name: Bob", "limit": 5000}
        ]
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["ask_helper"].description == "Remembers what you like."
        assert tools["ask_helper"].input_schema["required"] == ["message"]
        assert tools["list_agents"].annotations.read_only_hint is True
        listed = await client.call_tool("list_agents", {})
        reply = await client.call_tool(
            "ask_helper", {"message": "I like tea"}, progress_callback=on_progress
        )

    assert [a["name"] for a in listed.structured_content["agents"]] == ["helper"]
    assert not reply.is_error and reply.content[0].text == "Noted, tea it is."
    data = reply.structured_content
    assert data["tool_calls"] == ["core_memory_append"]
    assert data["usage"]["step_count"] == 2 and data["conversation"] == "default"
    assert [p[0] for p in progress] == [0, 1, 2]
    assert progress[1][2] == "step 1: called core_memory_append"
    system = upstream.chat_requests[0].json["messages"][0]["content"]
    assert "Be brief." in system and "Name: Bob" in system
    agent = httpx2.get(gateway.base_url + "/agents/helper").json()
    assert "likes tea" in agent["memory_blocks"][0]["value"]


async def test_tool_list_follows_agents_made_elsewhere(gateway):
    async with mcp_client(gateway.url) as client:
        async with client.listen(tools_list_changed=True) as changes:
            rest_agent(gateway, name="first", description="One.")
            with anyio.fail_after(10):
                await changes.__anext__()
        assert "ask_first" in tool_names(await client.list_tools())
        r = httpx2.patch(
            gateway.base_url + "/agents/first", json={"name": "second", "description": "Two."}
        )
        assert r.status_code == 200
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "ask_first" not in tools and tools["ask_second"].description == "Two."
        assert httpx2.delete(gateway.base_url + "/agents/second").status_code == 200
        assert not any(n.startswith("ask_") for n in tool_names(await client.list_tools()))


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_agents_made_by_another_gateway_are_listed_and_callable(make_gateway, mode):
    # Two gateways on one store, as two workers or replicas would be.
    first, second = make_gateway(), make_gateway()
    async with mcp_client(second.url, mode=mode) as client:
        assert "ask_elsewhere" not in tool_names(await client.list_tools())
        rest_agent(first, name="elsewhere")
        assert "ask_elsewhere" in tool_names(await client.list_tools())
    async with mcp_client(first.url, mode=mode) as client:
        rest_agent(second, name="other")
        # Called without listing first: the name is looked up in the store.
        reply = await client.call_tool("ask_other", {"message": "hi"})
    assert reply.content[0].text == "echo: hi"


async def test_send_message_conversations_and_errors(gateway, upstream):
    rest_agent(gateway, name="pal")
    async with mcp_client(gateway.url) as client:
        a = await client.call_tool(
            "send_message", {"agent": "pal", "message": "one", "conversation": "c1"}
        )
        b = await client.call_tool(
            "send_message", {"agent": "pal", "message": "two", "conversation": "c2"}
        )
        via_chat = await client.call_tool("chat", {"model": "agent/pal", "prompt": "three"})
        missing = await client.call_tool("send_message", {"agent": "nobody", "message": "hi"})
        bad_name = await client.call_tool("create_agent", {"name": "no spaces", "model": MODEL})
        twice = await client.call_tool("create_agent", {"name": "pal", "model": MODEL})
        bad_model = await client.call_tool("create_agent", {"name": "x", "model": "nope/m"})
    assert (a.content[0].text, b.content[0].text) == ("echo: one", "echo: two")
    assert b.structured_content["conversation"] == "c2"
    assert via_chat.structured_content["model"] == "agent/pal"
    assert via_chat.content[0].text == "echo: three"
    # Each conversation has its own history: c2's request does not carry c1's messages.
    contents = [m["content"] for m in upstream.chat_requests[1].json["messages"][1:]]
    assert contents == ["two"]
    http_404 = httpx2.get(gateway.base_url + "/agents/nobody").json()["error"]
    assert missing.is_error and missing.content[0].text == http_404["message"]
    assert missing.meta["agent-gateway/error"]["code"] == "model_not_found"
    assert bad_name.is_error
    assert twice.is_error and twice.meta["agent-gateway/error"]["code"] == "agent_exists"
    assert bad_model.is_error
    assert bad_model.meta["agent-gateway/error"]["code"] == "model_not_found"


# -- agents using another MCP server's tools ----------------------------------------------


@pytest.fixture
def remote_tools() -> Iterator[McpTestServerProcess]:
    with McpTestServerProcess(require_header="X-Token=s3cret") as server:
        yield server


@pytest.fixture
def tools_gateway(make_gateway, remote_tools, tmp_path: Path):
    command, args = stdio_command()
    config = tmp_path / "with-mcp.toml"
    config.write_text(
        f"""
[[mcp_servers]]
name = "local"
command = {json.dumps(command)}
args = {json.dumps(args)}
timeout = {SHORT}

[[mcp_servers]]
name = "remote"
url = "{remote_tools.url}"
headers = {{ X-Token = "s3cret" }}
timeout = {SHORT}

[[mcp_servers]]
name = "down"
url = "http://127.0.0.1:9/mcp"
timeout = {SHORT}
"""
    )
    return make_gateway(config=config)


def tool_results(request) -> dict[str, str]:
    """tool_call_id -> the tool message's content, from a recorded upstream request."""
    return {
        m["tool_call_id"]: m["content"] for m in request.json["messages"] if m["role"] == "tool"
    }


async def test_agent_calls_external_mcp_tools(tools_gateway, upstream, remote_tools):
    rest_agent(tools_gateway, name="worker", mcp_servers=["local", "remote", "down"])
    calls = [
        {"id": "c1", "name": "local__echo", "arguments": {"text": "hi"}},
        {"id": "c2", "name": "remote__hang", "arguments": {}},
        {"id": "c3", "name": "local__fail", "arguments": {"reason": "disk full"}},
        {"id": "c4", "name": "remote__echo", "arguments": {"text": "there"}},
    ]
    upstream.script(Reply.completion(tool_calls=calls), Reply.completion(content="All done."))
    async with mcp_client(tools_gateway.url) as client:
        reply = await client.call_tool("ask_worker", {"message": "use your tools"})
        assert not reply.is_error and reply.content[0].text == "All done."

        offered = [t["function"]["name"] for t in upstream.chat_requests[0].json["tools"]]
        for name in (
            "local__echo",
            "local__hang",
            "local__fail",
            "local__dotted_name",
            "remote__echo",
            "remote__hang",
            "core_memory_append",
        ):
            assert name in offered
        assert not any(n.startswith("down__") for n in offered)  # down: no tools, no failure
        results = tool_results(upstream.chat_requests[1])
        assert results["c1"] == "echoed: hi"
        assert results["c2"] == f"Error: MCP tool 'remote__hang' timed out after {SHORT:g} s"
        assert results["c3"].startswith("Error: MCP tool 'local__fail' failed:")
        assert "disk full" in results["c3"]
        assert results["c4"] == "echoed: there"

        # The remote server goes away between turns: its tool call fails, the turn does not.
        remote_tools.stop()
        upstream.script(
            Reply.completion(
                tool_calls=[{"id": "c5", "name": "remote__echo", "arguments": {"text": "anyone?"}}]
            ),
            Reply.completion(content="The remote server is gone."),
        )
        second = await client.call_tool("ask_worker", {"message": "again"})
    assert not second.is_error and second.content[0].text == "The remote server is gone."
    assert tool_results(upstream.chat_requests[3])["c5"].startswith(
        "Error: MCP tool 'remote__echo' failed:"
    )


async def test_agent_offered_only_the_tools_it_names(tools_gateway, upstream):
    rest_agent(
        tools_gateway,
        name="picky",
        mcp_servers=["local"],
        tools=["local__echo", "conversation_search"],
    )
    async with mcp_client(tools_gateway.url) as client:
        await client.call_tool("ask_picky", {"message": "hi"})
    offered = [t["function"]["name"] for t in upstream.chat_requests[0].json["tools"]]
    assert sorted(offered) == ["conversation_search", "local__echo"]


async def test_stdio_gateway_serves_agents(gateway_env, gateway_config, upstream):
    async with Client(gateway_mcp(gateway_env, gateway_config)) as client:
        created = await client.call_tool("create_agent", {"name": "desk", "model": MODEL})
        assert not created.is_error, created.content
        assert "ask_desk" in tool_names(await client.list_tools())
        reply = await client.call_tool("ask_desk", {"message": "hello"})
    assert reply.content[0].text == "echo: hello"


ADMIN = "admin-key-of-the-mcp-agents-test"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_keys_agent_list_holds_over_mcp(make_gateway, upstream, mode):
    """A virtual key limited to `support-*` sees and reaches only those agents over MCP,
    as it does over REST: listing, ask_<name>, send_message and create_agent."""
    gateway = make_gateway({"GATEWAY_ADMIN_KEY": ADMIN})
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for name in ("support-bot", "secret"):
        r = httpx2.post(
            gateway.base_url + "/agents", json={"name": name, "model": MODEL}, headers=admin
        )
        assert r.status_code == 201, r.text
    created = httpx2.post(
        gateway.base_url + "/keys",
        headers=admin,
        json={"name": "support", "agents": ["support-*"], "models": ["openai/*"]},
    )
    assert created.status_code == 201, created.text
    upstream.script(Reply.completion(content="hello from support"))
    async with mcp_client(gateway.url, key=created.json()["key"], mode=mode) as client:
        names = tool_names(await client.list_tools())
        listed = await client.call_tool("list_agents", {})
        asked = await client.call_tool("ask_support-bot", {"message": "hi"})
        denied = [
            await client.call_tool("ask_secret", {"message": "hi"}),
            await client.call_tool("send_message", {"agent": "secret", "message": "hi"}),
            await client.call_tool("create_agent", {"name": "other", "model": MODEL}),
        ]
    assert "ask_support-bot" in names and "ask_secret" not in names
    assert [a["name"] for a in listed.structured_content["agents"]] == ["support-bot"]
    assert not asked.is_error and "hello from support" in asked.content[0].text
    for result in denied:
        assert result.is_error
        assert result.meta["agent-gateway/error"]["code"] == "agent_not_allowed"
    assert len(upstream.chat_requests) == 1  # nothing ran for the refused calls
