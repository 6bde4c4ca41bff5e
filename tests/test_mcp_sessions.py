"""Session-based (2025-11-25) MCP clients: sessions are capped and closed when idle."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2

from tests.gateway_server import GatewayServer

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
HEADERS = {"accept": "application/json, text/event-stream"}
# How long the test waits for an idle session to be closed (generous; not measured).
PATIENCE = 60


def _open_session(client: httpx2.Client) -> httpx2.Response:
    return client.post("/mcp", json=INIT, headers=HEADERS)


def test_sessions_are_capped_and_idle_ones_closed(
    make_gateway: Callable[..., GatewayServer],
) -> None:
    gw = make_gateway(mcp_max_sessions=1, mcp_session_idle_timeout=1)
    with httpx2.Client(base_url=gw.url, timeout=30) as client:
        first = _open_session(client)
        assert first.status_code == 200, first.text
        assert first.headers.get("mcp-session-id")
        # The cap: a second session is refused while the first is open.
        refused = _open_session(client)
        assert refused.status_code == 503
        # The first session, left alone, is closed; then a new one is admitted.
        deadline = time.monotonic() + PATIENCE
        while (second := _open_session(client)).status_code == 503:
            assert time.monotonic() < deadline, "the idle session was never closed"
            time.sleep(0.2)
        assert second.status_code == 200, second.text
        gone = client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
            headers={**HEADERS, "mcp-session-id": first.headers["mcp-session-id"]},
        )
        assert gone.status_code == 404
