"""`POST /v1/chat/completions` with model `agent/<name>`: one agent turn, in OpenAI's shapes.

The new input is the request's user messages after its last assistant message (all of
them when there is none); system and developer messages are ignored, since the agent
has its own. The reply is a `chat.completion`, or `chat.completion.chunk` events
ending with `[DONE]`, carrying the turn's text and its usage summed over steps.
`X-Conversation-Id` (or Open WebUI's `X-OpenWebUI-Chat-Id`) selects the conversation;
`Idempotency-Key` returns the stored answer of a request already answered.

A stream's headers go out with its first token, so a turn that fails before saying
anything gets a plain HTTP error; after that, an error ends the stream with a
`data: {"error": …}` event. A client that leaves does not stop the turn.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from gateway import errors
from gateway.agents.schemas import TurnResult
from gateway.agents.service import TurnStream
from gateway.http.asgi import JSON_HEADERS, SSE_HEADERS, header, send_bytes, services_of
from gateway.providers.base import CallStats

PREFIX = "agent/"
_IGNORED_ROLES = frozenset({"system", "developer"})


async def agent_chat(scope: Scope, receive: Receive, send: Send, body: dict[str, Any]) -> None:
    services = services_of(scope)
    model: str = body["model"]
    _check_body(body)
    inputs = new_input(body["messages"])
    calls: list[CallStats] = []
    scope.setdefault("state", {})["call_stats"] = calls
    kwargs: dict[str, Any] = {
        "conversation": _header(scope, b"x-conversation-id")
        or _header(scope, b"x-openwebui-chat-id"),
        "idempotency_key": _header(scope, b"idempotency-key"),
        "calls": calls,
    }
    ref = model[len(PREFIX) :]
    if body.get("stream"):
        stream = await services.agents.stream_turn(ref, inputs, **kwargs)
        options = body.get("stream_options") or {}
        await _send_stream(stream, model, bool(options.get("include_usage")), receive, send)
        return
    result = await services.agents.run_turn(ref, inputs, **kwargs)
    headers = [*JSON_HEADERS, *turn_headers(result, calls)]
    await send_bytes(send, 200, orjson.dumps(completion(result, model)), headers)


def new_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user messages after the last assistant message."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    new = [m for m in messages[last + 1 :] if m.get("role") == "user"]
    if not new:
        raise errors.InvalidRequest(
            "no user message after the last assistant message: an agent turn needs new input",
            param="messages",
        )
    return new


def completion(result: TurnResult, model: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": result.reply, "refusal": None}
    return {
        "id": f"chatcmpl-{result.turn_id}",
        "object": "chat.completion",
        "created": int(result.created_at),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish(result.finish_reason),
            }
        ],
        "usage": result.usage.to_api(),
    }


def turn_headers(result: TurnResult, calls: list[CallStats]) -> list[tuple[bytes, bytes]]:
    """Server-Timing tells a client (and the benchmark) how long the upstream took."""
    upstream_ms = sum(c.upstream_seconds for c in calls) * 1000
    headers = [(b"server-timing", f"upstream;dur={upstream_ms:.3f}".encode())]
    if result.replayed:
        headers.append((b"idempotent-replayed", b"true"))
    return headers


def _check_body(body: dict[str, Any]) -> None:
    if body.get("tools") or body.get("functions"):
        raise errors.InvalidRequest(
            "an agent model runs its own tools; remove 'tools' from the request (attach "
            "tools to the agent instead)",
            param="tools",
        )
    n = body.get("n")
    if n is not None and n != 1:
        raise errors.InvalidRequest("an agent gives one answer per turn; 'n' must be 1", param="n")


def _header(scope: Scope, name: bytes) -> str | None:
    value = header(scope, name)
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise errors.InvalidRequest(
            f"header {name.decode()} is not valid UTF-8", param=name.decode()
        ) from None


def _finish(reason: str) -> str:
    return reason if reason in ("stop", "length", "content_filter") else "stop"


class _Chunks:
    """chat.completion.chunk events of one stream, all sharing id, created and model."""

    def __init__(self, stream: TurnStream, model: str, include_usage: bool) -> None:
        self.stream = stream
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())

    def event(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._frame({"choices": [choice]})

    def usage(self, result: TurnResult) -> bytes:
        return self._frame({"choices": [], "usage": result.usage.to_api()})

    def _frame(self, extra: dict[str, Any]) -> bytes:
        chunk: dict[str, Any] = {
            "id": f"chatcmpl-{self.stream.turn_id}",
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            **extra,
        }
        if self.include_usage and "usage" not in chunk:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def _send_stream(
    stream: TurnStream, model: str, include_usage: bool, receive: Receive, send: Send
) -> None:
    chunks = _Chunks(stream, model, include_usage)
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    started = False

    async def body(data: bytes, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})

    async def start() -> None:
        nonlocal started
        started = True
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await body(chunks.event({"role": "assistant", "content": ""}))

    try:
        async for delta in stream:
            if gone.done():
                return  # the client left; the turn goes on and is stored
            if not started:
                await start()
            await body(chunks.event({"content": delta}))
        assert stream.result is not None
        if not started:
            await start()
        tail = chunks.event({}, _finish(stream.result.finish_reason))
        if include_usage:
            tail += chunks.usage(stream.result)
        await body(tail + b"data: [DONE]\n\n", more=False)
    except errors.GatewayError as exc:
        if not started:
            raise
        await body(b"data: " + exc.json_bytes() + b"\n\n", more=False)
    finally:
        gone.cancel()


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
