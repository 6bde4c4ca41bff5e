"""Small raw-ASGI helpers for the hot routes, which skip Starlette's request objects."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from gateway import errors
from gateway.wire import anthropic_messages_reply

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def text_header(scope: Scope, name: bytes) -> str | None:
    """A header as text; a value that is not UTF-8 is the client's mistake (400)."""
    value = header(scope, name)
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise errors.InvalidRequest(
            f"header {name.decode()} is not valid UTF-8", param=name.decode()
        ) from None


def conversation_header(scope: Scope) -> str | None:
    """The agent conversation a request names: `X-Conversation-Id`, or Open WebUI's own."""
    return text_header(scope, b"x-conversation-id") or text_header(scope, b"x-openwebui-chat-id")


async def wait_disconnect(receive: Receive) -> None:
    """Returns when the client has gone (a stream's relay races against it)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def services_of(scope: Scope) -> Any:
    return scope["app"].state.services


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes as soon as it is known."""
    length = header(scope, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.InvalidRequest("client disconnected before sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# orjson reads JSON nested up to 1024 levels but writes at most 254, and every body is
# written again (to a provider, to the store, into a reply) inside a few levels of
# wrapping. Refusing deeper bodies here turns a later 500 into a 400 that says why.
MAX_JSON_DEPTH = 200


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object; 400 `invalid_json` otherwise."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.InvalidJSON(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise errors.InvalidJSON("request body must be a JSON object")
    # A body with fewer brackets than the limit cannot nest deeper: count them in C
    # before walking anything, so ordinary bodies pay almost nothing.
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH and nesting_exceeds(data, MAX_JSON_DEPTH):
        raise errors.InvalidJSON(f"request body is nested more than {MAX_JSON_DEPTH} levels deep")
    return data


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether objects and arrays in `value` nest more than `limit` levels (the value
    itself is level 1). Iterative, so no depth can exhaust Python's stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, level + 1))
    return False


def reject_nul_in_url(scope: Scope) -> None:
    """400 when the path or a query parameter holds a NUL character (`%00`).

    No route has a use for one, and the store cannot look one up (PostgreSQL refuses NUL
    in text), so this is checked once for every route, before any handler runs.
    """
    if "\x00" in scope["path"]:
        raise errors.InvalidRequest("the URL path contains a NUL character (%00)", param="path")
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                raise errors.InvalidRequest(
                    f"query parameter '{name}' contains a NUL character (%00)",
                    param=name.replace("\x00", "") or "query",
                )


def too_large(limit: int) -> errors.RequestTooLarge:
    return errors.RequestTooLarge(
        f"request body is larger than the limit of {limit} bytes (GATEWAY_MAX_BODY_BYTES)"
    )


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = JSON_HEADERS,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def speaks_anthropic(scope: Scope) -> bool:
    """Whether the request is one of Anthropic's Messages routes, whose clients expect
    Anthropic's error shape."""
    path: str = scope["path"]
    return path == "/v1/messages" or path.startswith("/v1/messages/")


def error_bytes(scope: Scope, error: errors.GatewayError) -> bytes:
    """The error body in the protocol of the route the request came to."""
    if speaks_anthropic(scope):
        state = scope.get("state")
        request_id = state.get("request_id") if isinstance(state, dict) else None
        return anthropic_messages_reply.error_bytes(error, request_id)
    return error.json_bytes()


async def send_error(send: Send, error: errors.GatewayError, scope: Scope | None = None) -> None:
    """An error response; with `scope`, in the shape of that route's protocol."""
    extra = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    body = error.json_bytes() if scope is None else error_bytes(scope, error)
    await send_bytes(send, error.status, body, [*JSON_HEADERS, *extra])


def timing_headers(upstream_seconds: float, *, replayed: bool = False) -> list[tuple[bytes, bytes]]:
    """Server-Timing tells a client (and the benchmark) how long the upstream took;
    `Idempotent-Replayed` that an agent turn's stored answer was returned."""
    headers = [(b"server-timing", f"upstream;dur={upstream_seconds * 1000:.3f}".encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    return headers
