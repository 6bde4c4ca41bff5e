"""MCP protocol errors as the spec has them, with the official client and raw HTTP.

An unknown tool or prompt is a JSON-RPC error -32602 in both protocol eras (the SDK
makes the first an error result and the second an internal error). Refusals the SDK's
transport answers in plain text (body too large, wrong Host or Origin) get the
gateway's JSON error body, like every other route.
"""

from __future__ import annotations

import httpx2
import pytest
from mcp import MCPError
from mcp.types import INVALID_PARAMS

from tests.mcp_clients import mcp_client

MCP_HEADERS = {"accept": "application/json, text/event-stream"}
MODERN = "2026-07-28"


def modern_call(method: str, params: dict[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    """A 2026-07-28 request (no session): the envelope in `_meta`, the routing headers."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**params, "_meta": meta}}
    headers = {**MCP_HEADERS, "mcp-protocol-version": MODERN, "mcp-method": method}
    if "name" in params:
        headers["mcp-name"] = str(params["name"])
    return body, headers


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_unknown_tool_and_prompt_are_invalid_params(gateway, mode):
    async with mcp_client(gateway.url, mode=mode) as client:
        with pytest.raises(MCPError) as tool:
            await client.call_tool("no_such_tool", {})
        with pytest.raises(MCPError) as prompt:
            await client.get_prompt("no_such_prompt")
        # The connection is still usable.
        assert not (await client.call_tool("list_models", {})).is_error
    assert tool.value.error.code == INVALID_PARAMS
    assert "no_such_tool" in tool.value.error.message
    assert prompt.value.error.code == INVALID_PARAMS
    assert "no_such_prompt" in prompt.value.error.message
    metrics = httpx2.get(gateway.url + "/metrics").text
    assert 'gateway_mcp_tool_calls_total{outcome="not_found",tool="other"} 1.0' in metrics


def test_unknown_tool_over_raw_http(gateway):
    body, headers = modern_call("tools/call", {"name": "nope", "arguments": {}})
    reply = httpx2.post(gateway.url + "/mcp", json=body, headers=headers)
    # The 2026 transport answers a JSON-RPC error about the request's params with a 400.
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == INVALID_PARAMS and "nope" in error["message"]


def test_body_over_the_limit_is_the_json_413(make_gateway):
    gateway = make_gateway(max_body_bytes=2048)
    body, headers = modern_call("tools/call", {"name": "chat", "arguments": {"x": "y" * 5000}})
    reply = httpx2.post(gateway.url + "/mcp", json=body, headers=headers)
    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["error"]["code"] == "request_too_large"

    # Without Content-Length (chunked), the SDK counts; its answer is ours all the same.
    def chunks():
        yield b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"x": "'
        yield b"y" * 5000
        yield b'"}}'

    json_headers = {**headers, "content-type": "application/json"}
    chunked = httpx2.post(gateway.url + "/mcp", content=chunks(), headers=json_headers)
    assert chunked.status_code == 413
    assert chunked.json()["error"]["code"] == "request_too_large"


def test_wrong_host_and_origin_are_json_errors(gateway):
    body, headers = modern_call("tools/list", {})
    host = httpx2.post(gateway.url + "/mcp", json=body, headers={**headers, "host": "evil.example"})
    assert host.status_code == 421
    assert host.json()["error"]["code"] == "invalid_host"
    origin = httpx2.post(
        gateway.url + "/mcp", json=body, headers={**headers, "origin": "http://evil.example"}
    )
    assert origin.status_code == 403
    assert origin.json()["error"]["code"] == "invalid_origin"
    no_type = httpx2.post(gateway.url + "/mcp", content=b"{}", headers=headers)
    assert no_type.status_code == 400
    assert no_type.json()["error"]["message"] == "Invalid Content-Type header"
    # What the SDK already answers in JSON (a JSON-RPC error) is left alone.
    json_headers = {**headers, "content-type": "application/json"}
    garbage = httpx2.post(gateway.url + "/mcp", content=b"{", headers=json_headers)
    assert garbage.status_code == 400
    assert garbage.json()["error"]["code"] == -32700
