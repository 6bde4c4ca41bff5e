"""`POST /v1/messages` and `/v1/messages/count_tokens`: Anthropic's Messages API.

Any model handle, alias or `agent/<name>` answers. A request for a provider that takes
Messages natively (an `anthropic` provider, or one configured with an
Anthropic-compatible base URL) goes through unchanged but for `model`, and the
upstream's bytes come back; any other is translated to the internal request
(`wire/anthropic_messages.py`), served by the chat service, and its reply or stream
events translated back (`wire/anthropic_messages_reply.py`, `_sse.py`).

Errors on these routes are Anthropic-shaped (`http/asgi.error_bytes`); a stream that
fails after its start ends with an `event: error` frame. Query strings (Claude Code's
`?beta=true`) and the `anthropic-version`/`anthropic-beta` headers are accepted as
they come, and passed on to a native upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from gateway import errors
from gateway.chat import ChatContext, ChatService, EventStream, Target
from gateway.chat.tokens import count_tokens
from gateway.http.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    conversation_header,
    header,
    parse_json_object,
    read_body,
    send_bytes,
    services_of,
    text_header,
    wait_disconnect,
)
from gateway.providers.profiles import WireName
from gateway.providers.streams import UpstreamStream
from gateway.tenants.caller import caller_of
from gateway.wire import anthropic_messages as wire
from gateway.wire.anthropic_messages_reply import to_message
from gateway.wire.anthropic_messages_sse import MessageStream, error_frame

WIRE: WireName = "anthropic-messages"
DROPPED_TOOLS_HEADER = b"x-gateway-dropped-tools"
# Client headers a native upstream should see: the API version and beta features asked for.
_NATIVE_HEADERS = (b"anthropic-version", b"anthropic-beta")


class Messages:
    """ASGI endpoint for `POST /v1/messages`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = services_of(scope)
        raw = await read_body(scope, receive, services.settings.max_body_bytes)
        body = parse_json_object(raw)
        wire.check_request(body)
        chat: ChatService = services.chat
        caller = caller_of(scope)
        target = await chat.resolve(body["model"], caller)
        ctx = ChatContext()
        scope.setdefault("state", {})["call_stats"] = ctx.records
        if chat.native(target, WIRE):
            headers = native_headers(scope)
            reply = await chat.forward_native(target, WIRE, body, caller, ctx, headers=headers)
            if reply.stream is not None:
                await _send_sse(scope, receive, send, reply.stream, None, [])
            else:
                await send_bytes(send, 200, reply.body or b"")
            return
        if target.agent is not None:
            ctx.conversation = conversation_header(scope)
            ctx.idempotency_key = text_header(scope, b"idempotency-key")
        internal = wire.to_internal(body, traits_of(target))
        extra = _dropped(body)
        model: str = body["model"]
        if body.get("stream") is True:
            events = await chat.stream(internal, caller, ctx)
            await _send_sse(scope, receive, send, events, MessageStream(model), extra)
            return
        completion = await chat.complete(internal, caller, ctx)
        reply_bytes = orjson.dumps(to_message(completion, model))
        await send_bytes(send, 200, reply_bytes, [*JSON_HEADERS, *extra])


class CountTokens:
    """ASGI endpoint for `POST /v1/messages/count_tokens`: `{"input_tokens": N}`.

    The provider's own count where it has one (`chat/tokens.py`), else
    `wire.estimate_tokens` of the translated request.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = services_of(scope)
        raw = await read_body(scope, receive, services.settings.max_body_bytes)
        body = parse_json_object(raw)
        wire.check_request(body)
        chat: ChatService = services.chat
        target = await chat.resolve(body["model"], caller_of(scope))
        internal = wire.to_internal(body, traits_of(target))
        count = await count_tokens(target, body, internal, headers=native_headers(scope))
        if count is None:
            count = wire.estimate_tokens(internal)
        await send_bytes(send, 200, orjson.dumps({"input_tokens": count}))


def traits_of(target: Target) -> wire.Traits:
    """What the translation must know of the model that will answer."""
    if target.route is None:
        return wire.Traits()  # an agent: its own model and tools decide
    profile = target.route.client.spec.profile
    prefixes = profile.reasoning_effort_prefixes
    return wire.Traits(
        tool_choice_required=profile.tool_choice_required == "pass",
        reasoning_effort=bool(prefixes) and target.route.model.startswith(prefixes),
        reasoning_history=profile.reasoning_history,
    )


def native_headers(scope: Scope) -> dict[str, str]:
    out = {}
    for name in _NATIVE_HEADERS:
        value = header(scope, name)
        if value:
            out[name.decode()] = value.decode("latin-1")
    return out


def _dropped(body: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """Tools only Anthropic can run are left out; the client may want to know which."""
    names = wire.dropped_tools(body)
    return [(DROPPED_TOOLS_HEADER, ", ".join(names).encode())] if names else []


async def _send_sse(
    scope: Scope,
    receive: Receive,
    send: Send,
    source: EventStream | UpstreamStream[bytes],
    encoder: MessageStream | None,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Send a stream: internal events through `encoder`, or (None) a native upstream's
    SSE byte blocks as they are.

    The chat service has read the first event already, so a failure before any
    output was an ordinary error response. A failure later ends the stream with
    Anthropic's `event: error`. A client that leaves stops the upstream call.
    """
    gone = asyncio.ensure_future(wait_disconnect(receive))
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *headers]})
    items: AsyncIterator[Any] = source.__aiter__()
    try:
        # At the shutdown deadline: `event: error` (`shutting_down`), see gateway.lifecycle.
        async with services_of(scope).drain.deadline():
            async for item in items:
                chunk = item if encoder is None else encoder.feed(item)
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if gone.done():
                    return
        if encoder is not None and not encoder.finished:
            raise errors.UpstreamUnavailable("the reply ended before it was complete")
    except errors.GatewayError as exc:
        await send(
            {"type": "http.response.body", "body": _error_frame(scope, exc), "more_body": True}
        )
    finally:
        close = getattr(items, "aclose", None)
        if close is not None and items is not source:
            await close()
        await source.aclose()
        if not gone.done():
            gone.cancel()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _error_frame(scope: Scope, error: errors.GatewayError) -> bytes:
    state = scope.get("state")
    request_id = state.get("request_id") if isinstance(state, dict) else None
    return error_frame(error, request_id)
