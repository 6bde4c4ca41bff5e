"""Ceiling baseline: a bare ASGI callable (no framework) that forwards
``POST /v1/chat/completions`` to the upstream with one pooled aiohttp session and
relays the JSON reply, or the SSE stream piece by piece as it arrives.

Run: ``python bench/baselines/bare_aiohttp.py --port 8001 --upstream http://127.0.0.1:9000/v1``
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import UPSTREAM_ERROR, chat_url, is_sse, make_session, serve

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_session: aiohttp.ClientSession | None = None
_chat_url = ""
JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


async def lifespan(receive: Receive, send: Send) -> None:
    global _session, _chat_url
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _session, _chat_url = make_session(), chat_url()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _session is not None:
                await _session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Receive) -> bytes:
    first = await receive()
    body = first.get("body", b"")
    if not first.get("more_body"):
        return body  # the common case: one message, no copy
    parts = [body]
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def relay(resp: aiohttp.ClientResponse, send: Send) -> None:
    if is_sse(resp.headers.get("Content-Type", "")):
        await send({"type": "http.response.start", "status": resp.status, "headers": SSE_HEADERS})
        async for piece in resp.content.iter_any():
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await respond(send, resp.status, JSON_HEADERS, await resp.read())


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
        await respond(send, 404, JSON_HEADERS, b'{"error":{"message":"not found"}}')
        return
    body = await read_body(receive)
    assert _session is not None
    try:
        async with _session.post(_chat_url, data=body) as resp:
            await relay(resp, send)
    except aiohttp.ClientError:
        # Only reachable before the first byte in practice; good enough for a baseline.
        await respond(send, 502, JSON_HEADERS, UPSTREAM_ERROR)


if __name__ == "__main__":
    serve(app, __doc__ or "")
