"""`POST /v1/chat/completions`: the hot route, written as a raw ASGI app.

The body is parsed once, checked only where a mistake would otherwise reach the
upstream as a confusing error, and handed to the chat service. When the provider
speaks OpenAI chat, the request goes with everything we do not change (tools,
tool_choice, response_format, unknown fields) and replies go back as the upstream's
bytes, streams relayed event by event. Otherwise (an agent, an Anthropic provider)
the service's internal reply is encoded here as a `chat.completion` or its chunks.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from gateway import errors
from gateway.chat import ChatContext, ChatService, EventStream
from gateway.http.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    conversation_header,
    parse_json_object,
    read_body,
    send_bytes,
    services_of,
    text_header,
    timing_headers,
    wait_disconnect,
)
from gateway.lifecycle import Drain
from gateway.providers.streams import UpstreamStream
from gateway.tenants.caller import caller_of
from gateway.wire.openai_chat import ChunkEncoder, reply_of

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def parse_chat_request(raw: bytes) -> dict[str, Any]:
    """Parse and check the fields whose mistakes we must report ourselves."""
    body = parse_json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise errors.InvalidRequest(
            "'model' is required and must be a non-empty string", param="model"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise errors.InvalidRequest(
            "'messages' is required and must be a non-empty array", param="messages"
        )
    for i, message in enumerate(messages):
        _check_message(message, f"messages[{i}]")
    _check_type(body, "stream", bool)
    _check_type(body, "stream_options", dict)
    _check_type(body, "tools", list)
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict):
            raise errors.InvalidRequest("each tool must be an object", param=f"tools[{i}]")
    _check_type(body, "n", int)
    _check_type(body, "max_tokens", int)
    _check_type(body, "max_completion_tokens", int)
    _check_type(body, "temperature", (int, float))
    _check_type(body, "top_p", (int, float))
    return body


def _check_message(message: Any, where: str) -> None:
    """The types of a message's fields that a translator or the agent loop reads.

    Only types: values are the upstream's business. Unknown fields pass.
    """
    if not isinstance(message, dict):
        raise errors.InvalidRequest("each message must be an object", param=where)
    role = message.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise errors.InvalidRequest(
            f"{where}.role must be one of {', '.join(sorted(_ROLES))}", param=f"{where}.role"
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise errors.InvalidRequest(
            f"{where}.content must be a string or an array of content parts",
            param=f"{where}.content",
        )
    for i, part in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise errors.InvalidRequest(
                "each content part must be an object with a string 'type'",
                param=f"{where}.content[{i}]",
            )
    _check_type(message, "name", str, where)
    _check_type(message, "tool_call_id", str, where)
    _check_type(message, "tool_calls", list, where)
    for i, call in enumerate(message.get("tool_calls") or ()):
        at = f"{where}.tool_calls[{i}]"
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            raise errors.InvalidRequest(
                "each tool call must be an object with a 'function' object", param=at
            )
        _check_type(call, "id", str, at)
        _check_type(call["function"], "name", str, f"{at}.function")
        _check_type(call["function"], "arguments", str, f"{at}.function")


def _check_type(
    body: dict[str, Any], field: str, kind: type | tuple[type, ...], where: str = ""
) -> None:
    value = body.get(field)
    if value is None:
        return
    if isinstance(value, bool) and kind is not bool:
        ok = False
    else:
        ok = isinstance(value, kind)
    if not ok:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        wanted = {
            "dict": "object",
            "list": "array",
            "int": "integer",
            "float": "number",
            "bool": "boolean",
        }
        words = " or ".join(wanted.get(n, n) for n in names.split(" or "))
        param = f"{where}.{field}" if where else field
        raise errors.InvalidRequest(f"'{param}' must be {words}", param=param)


class ChatCompletions:
    """ASGI endpoint; the services object comes from the app state at call time."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = services_of(scope)
        raw = await read_body(scope, receive, services.settings.max_body_bytes)
        body = parse_chat_request(raw)
        chat: ChatService = services.chat
        # Every wait below races the shutdown deadline (see gateway.lifecycle).
        drain: Drain = services.drain
        caller = caller_of(scope)
        target = await chat.resolve(body["model"], caller)
        ctx = ChatContext()
        scope.setdefault("state", {})["call_stats"] = ctx.records
        route = target.route
        if route is not None and route.client.passthrough:
            # The fast lane: the upstream's bytes, never re-serialized.
            if body.get("stream"):
                async with drain.deadline():
                    relay = await chat.relay(target, body, caller, ctx)
                await relay_stream(relay, receive, send, drain)
            else:
                async with drain.deadline():
                    reply = await chat.forward(target, body, caller, ctx)
                await send_bytes(send, 200, reply)
            return
        if target.agent is not None:
            ctx.conversation = conversation_header(scope)
            ctx.idempotency_key = text_header(scope, b"idempotency-key")
        if body.get("stream"):
            options = body.get("stream_options") or {}
            async with drain.deadline():
                events = await chat.stream(body, caller, ctx)
            encoder = ChunkEncoder(include_usage=bool(options.get("include_usage")))
            await send_events(events, encoder, receive, send, drain)
            return
        async with drain.deadline():
            completion = await chat.complete(body, caller, ctx)
        headers = JSON_HEADERS
        if ctx.turn is not None:
            extra = timing_headers(ctx.upstream_seconds, replayed=ctx.turn.replayed)
            headers = [*JSON_HEADERS, *extra]
        await send_bytes(send, 200, orjson.dumps(reply_of(completion)), headers)


async def relay_stream(
    relay: UpstreamStream[bytes], receive: Receive, send: Send, drain: Drain
) -> None:
    """Send the stream on; end with an error event if it breaks after the first byte.

    A client that goes away stops the relay and closes the upstream connection, so
    the provider stops generating for nobody. A stream still open at the shutdown
    deadline ends with a `shutting_down` error event.
    """
    gone = asyncio.ensure_future(wait_disconnect(receive))
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    blocks = relay.__aiter__()
    try:
        async with drain.deadline():
            async for block in blocks:
                await send({"type": "http.response.body", "body": block, "more_body": True})
                if gone.done():
                    return
    except errors.GatewayError as exc:
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + exc.json_bytes() + b"\n\n",
                "more_body": True,
            }
        )
    finally:
        # Finish the relay's generator now rather than at garbage collection, so its
        # upstream time is counted before the request is measured.
        await blocks.aclose()
        await relay.aclose()
        if not gone.done():
            gone.cancel()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def send_events(
    events: EventStream, encoder: ChunkEncoder, receive: Receive, send: Send, drain: Drain
) -> None:
    """Internal events as `chat.completion.chunk`s; an error after the start ends the
    stream with an error event (`shutting_down` at the shutdown deadline). A client
    that leaves stops the reading (an agent's turn goes on and is stored)."""
    gone = asyncio.ensure_future(wait_disconnect(receive))
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    tail = encoder.done()
    try:
        async with drain.deadline():
            async for event in events:
                data = encoder.encode(event)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                if gone.done():
                    return
    except errors.GatewayError as exc:
        tail = b"data: " + exc.json_bytes() + b"\n\n"
    finally:
        await events.aclose()
        if not gone.done():
            gone.cancel()
    await send({"type": "http.response.body", "body": tail, "more_body": False})
