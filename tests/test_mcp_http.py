"""The MCP facade over real Streamable HTTP: the `mcp` SDK's client against a real gateway."""

from __future__ import annotations

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.fake_upstream import Reply
from tests.gateway_server import GatewayProcess
from tests.mcp_clients import mcp_client

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_listed_with_schemas_and_annotations(gateway, mode):
    async with mcp_client(gateway.url, mode=mode) as client:
        assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert {"list_models", "chat"} <= set(tools)
    assert tools["list_models"].annotations.read_only_hint is True
    chat = tools["chat"]
    assert chat.input_schema["required"] == ["model", "prompt"]
    assert set(chat.output_schema["properties"]) == {"model", "content", "finish_reason", "usage"}
    assert chat.description


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_list_models_and_chat(gateway, upstream, mode):
    upstream.script(
        Reply.completion(
            content="Paris.",
            usage={"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
        )
    )
    async with mcp_client(gateway.url, mode=mode) as client:
        models = await client.call_tool("list_models", {})
        reply = await client.call_tool(
            "chat", {"model": "openai/gpt-4o-mini", "prompt": "Capital of France?"}
        )
    assert not models.is_error
    handles = [m["handle"] for m in models.structured_content["models"]]
    assert "openai/gpt-4o" in handles and "openai/gpt-4o" in models.content[0].text
    entry = next(m for m in models.structured_content["models"] if m["handle"] == "openai/gpt-4o")
    assert entry["context_window"] == 128000
    assert not reply.is_error and reply.content[0].text == "Paris."
    assert reply.structured_content == {
        "model": "openai/gpt-4o-mini",
        "content": "Paris.",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 11, "completion_tokens": 2},
    }
    sent = upstream.chat_requests[-1].json
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [{"role": "user", "content": "Capital of France?"}]


async def test_errors_are_error_results_with_the_mapped_message(gateway, upstream):
    upstream.script(Reply.error(400, "prompt too long", code="context_length_exceeded"))
    async with mcp_client(gateway.url) as client:
        unknown = await client.call_tool("chat", {"model": "nope/x", "prompt": "hi"})
        too_long = await client.call_tool("chat", {"model": "openai/gpt-4o", "prompt": "hi"})
        missing = await client.call_tool("chat", {"model": "openai/gpt-4o"})
        # The connection is still usable after each of them.
        assert not (await client.call_tool("list_models", {})).is_error
    # The same message the OpenAI-compatible route gives for the same mistake.
    http = httpx2.post(
        gateway.base_url + "/chat/completions",
        json={"model": "nope/x", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert unknown.is_error
    assert unknown.content[0].text == http.json()["error"]["message"]
    assert unknown.content[0].text.startswith("unknown provider 'nope' in 'nope/x'")
    assert unknown.meta["agent-gateway/error"]["code"] == "model_not_found"
    assert too_long.is_error and "prompt too long" in too_long.content[0].text
    assert too_long.meta["agent-gateway/error"]["code"] == "context_length_exceeded"
    assert missing.is_error and "prompt" in missing.content[0].text
    metrics = httpx2.get(gateway.url + "/metrics").text
    # Refused before any tool body ran, and counted all the same.
    assert 'gateway_mcp_tool_calls_total{outcome="invalid_value",tool="chat"} 1.0' in metrics
    assert 'gateway_mcp_tool_calls_total{outcome="model_not_found",tool="chat"} 1.0' in metrics
    assert 'gateway_mcp_tool_calls_total{outcome="success",tool="list_models"} 1.0' in metrics
    assert (
        'gateway_llm_requests_total{model="gpt-4o",outcome="context_length_exceeded",'
        'provider="openai"} 1.0'
    ) in metrics


async def test_auth_required_when_keys_configured(make_gateway, upstream):
    gateway = make_gateway({"GATEWAY_API_KEYS": "k1,k2"})
    bare = httpx2.post(gateway.url + "/mcp", json=INIT, headers=MCP_HEADERS)
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == 'Bearer realm="agent-gateway"'
    assert bare.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx2.post(
        gateway.url + "/mcp", json=INIT, headers={**MCP_HEADERS, "authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    challenge = wrong.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="agent-gateway"')
    assert 'error="invalid_token"' in challenge
    # OAuth discovery probes get a plain 404, not another 401.
    probe = httpx2.get(gateway.url + "/.well-known/oauth-protected-resource/mcp")
    assert probe.status_code == 404

    for mode in ("auto", "legacy"):
        with pytest.raises(ExceptionGroup) as refused:
            async with mcp_client(gateway.url, key="nope", mode=mode):
                pass
        assert refused.group_contains(MCPError)
        async with mcp_client(gateway.url, key="k2", mode=mode) as client:
            reply = await client.call_tool("chat", {"model": "openai/gpt-4o", "prompt": "hi"})
            assert reply.content[0].text == "echo: hi"
    assert "k2" not in str(upstream.chat_requests[-1].headers)


async def test_dns_rebinding_protection(make_gateway):
    gateway = make_gateway(
        {
            "GATEWAY_ALLOWED_HOSTS": "gateway.example",
            "GATEWAY_ALLOWED_ORIGINS": "https://ide.example",
        }
    )
    url = gateway.url + "/mcp"
    evil = httpx2.post(url, json=INIT, headers={**MCP_HEADERS, "host": "evil.example:8080"})
    assert evil.status_code == 421
    origin = httpx2.post(url, json=INIT, headers={**MCP_HEADERS, "origin": "https://evil.example"})
    assert origin.status_code == 403
    for headers in (
        {"host": "gateway.example"},
        {"host": "localhost:1234"},
        {"origin": "https://ide.example"},
        {"origin": "http://localhost:6274"},
    ):
        ok = httpx2.post(url, json=INIT, headers={**MCP_HEADERS, **headers})
        assert ok.status_code == 200, (headers, ok.text)


async def test_openai_routes_unaffected_by_mcp_mount(gateway):
    # The MCP app sits on `/mcp` only: other unknown paths keep the gateway's JSON errors.
    r = httpx2.get(gateway.url + "/mcpx")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert httpx2.get(gateway.url + "/v1/models").status_code == 200


async def test_session_clients_across_workers(gateway_env, upstream):
    # Every request on a new connection, so they spread over both workers.
    env = {**gateway_env, "GATEWAY_API_KEYS": "k"}
    limits = httpx2.Limits(max_keepalive_connections=0)
    with GatewayProcess(env, "--workers", "2") as gateway:
        async with (
            httpx2.AsyncClient(headers={"Authorization": "Bearer k"}, limits=limits) as http,
            Client(
                streamable_http_client(gateway.url + "/mcp", http_client=http), mode="legacy"
            ) as client,
        ):
            for i in range(8):
                reply = await client.call_tool("chat", {"model": "gpt-4o", "prompt": f"n{i}"})
                assert reply.content[0].text == f"echo: n{i}"
