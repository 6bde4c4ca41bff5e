"""Sends fuzzed requests to a running gateway and judges each answer.

A failure is what a client would see as the gateway's own fault: a 5xx status, an
error frame or JSON-RPC error meaning an internal error (`internal_error`, -32603), or
an error answered in something other than the caller's protocol (not JSON).
"""

from __future__ import annotations

from typing import Any

import httpx2
import orjson

from tests.fuzz.routes import AGENT, KEY, LEGACY, MODEL, SESSION, Request
from tests.fuzz.strategies import header_safe
from tests.gateway_server import GatewayServer

MCP_ACCEPT = {"accept": "application/json, text/event-stream"}
# The gateway under fuzz runs with this admin key, so the management routes are reached;
# a request may carry an `authorization` of its own.
ADMIN_KEY = "fuzz-admin-key"


class Target:
    """One gateway under fuzz: an HTTP client, the agent `fuzz`, a legacy MCP session."""

    def __init__(self, gateway: GatewayServer) -> None:
        auth = {"authorization": f"Bearer {ADMIN_KEY}"}
        self.http = httpx2.Client(base_url=gateway.url, timeout=60, headers=auth)
        self.session = b""
        self.ensure_agent()
        self.ensure_key()

    def close(self) -> None:
        self.http.close()

    def ensure_agent(self) -> None:
        if self.http.get(f"/v1/agents/{AGENT}").status_code == 404:
            created = self.http.post("/v1/agents", json={"name": AGENT, "model": MODEL})
            assert created.status_code == 201, created.text

    def ensure_key(self) -> None:
        if self.http.get(f"/v1/keys/{KEY}").status_code == 404:
            created = self.http.post("/v1/keys", json={"name": KEY})
            assert created.status_code == 201, created.text

    def legacy_session(self) -> bytes:
        """A session-era (2025-11-25) MCP session, opened as a client would."""
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY,
                "capabilities": {},
                "clientInfo": {"name": "fuzz", "version": "0"},
            },
        }
        reply = self.http.post("/mcp", json=init, headers=MCP_ACCEPT)
        assert reply.status_code == 200, reply.text
        session = reply.headers["mcp-session-id"].encode()
        headers = {**MCP_ACCEPT, "mcp-session-id": session, "mcp-protocol-version": LEGACY}
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert self.http.post("/mcp", json=note, headers=headers).status_code == 202
        return session

    def send(self, request: Request) -> httpx2.Response:
        headers = {name: header_safe(value) for name, value in request.headers.items()}
        if headers.get("mcp-session-id") == SESSION:
            if not self.session:
                self.session = self.legacy_session()
            headers["mcp-session-id"] = self.session
        if request.body is not None:
            headers.setdefault("content-type", b"application/json")
        response = self.http.request(
            request.method,
            request.path,
            params=request.query,
            headers=headers,
            content=request.body,
        )
        if response.status_code == 404 and "mcp-session-id" in headers:
            self.session = b""  # the session ended (a DELETE, or the server forgot it)
        if request.method in ("PATCH", "DELETE") and response.status_code == 200:
            self.ensure_agent()
            self.ensure_key()
        return response


def problem(response: httpx2.Response) -> str | None:
    """Why this answer is the gateway's fault, or None when it is not."""
    status = response.status_code
    if status >= 500:
        return f"HTTP {status}: {response.text[:300]}"
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:"):
                found = _internal(_json(line[5:]))
                if found:
                    return f"in stream: {found}"
        return None
    data = _json(response.text)
    if status >= 400 and not isinstance(data, dict):
        return f"HTTP {status} answered with a body that is not JSON: {response.text[:200]!r}"
    return _internal(data)


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _internal(data: Any) -> str | None:
    """An internal error inside an answer: OpenAI-style, JSON-RPC, or an MCP tool result."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        # OpenAI's shape says `server_error`, Anthropic's `api_error`.
        internal = error.get("type") in ("server_error", "api_error")
        if internal or error.get("code") in ("internal_error", -32603):
            return orjson.dumps(error).decode()[:300]
    result = data.get("result")
    if isinstance(result, dict) and result.get("isError"):
        meta = (result.get("_meta") or {}).get("agent-gateway/error") or {}
        if meta.get("code") == "internal_error":
            return orjson.dumps(result).decode()[:300]
    return None
