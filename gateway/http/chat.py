"""`POST /v1/chat/completions`: the hot route, written as a raw ASGI app.

The body is parsed once, checked only where a mistake would otherwise reach the
upstream as a confusing error, and forwarded with everything we do not change
(tools, tool_choice, response_format, unknown fields). Replies go back as the
upstream's bytes; streams are relayed event by event.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive, Scope, Send

from gateway import errors
from gateway.http.agent_chat import agent_chat
from gateway.http.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    parse_json_object,
    read_body,
    send_bytes,
    services_of,
)
from gateway.providers.base import CallStats
from gateway.providers.sse import SSERelay
from gateway.tenants.caller import caller_of

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
        if not isinstance(message, dict):
            raise errors.InvalidRequest("each message must be an object", param=f"messages[{i}]")
        if message.get("role") not in _ROLES:
            raise errors.InvalidRequest(
                f"messages[{i}].role must be one of {', '.join(sorted(_ROLES))}",
                param=f"messages[{i}].role",
            )
    _check_type(body, "stream", bool)
    _check_type(body, "stream_options", dict)
    _check_type(body, "tools", list)
    _check_type(body, "n", int)
    _check_type(body, "max_tokens", int)
    _check_type(body, "max_completion_tokens", int)
    _check_type(body, "temperature", (int, float))
    _check_type(body, "top_p", (int, float))
    return body


def _check_type(body: dict[str, Any], field: str, kind: type | tuple[type, ...]) -> None:
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
        raise errors.InvalidRequest(f"'{field}' must be {words}", param=field)


class ChatCompletions:
    """ASGI endpoint; the services object comes from the app state at call time."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = services_of(scope)
        raw = await read_body(scope, receive, services.settings.max_body_bytes)
        body = parse_chat_request(raw)
        model: str = body["model"]
        caller = caller_of(scope)
        if model.startswith("agent/"):
            if not caller.may_use_agent(model[6:]):
                raise errors.AgentNotAllowed(f"this key may not use '{model}'", param="model")
            await agent_chat(scope, receive, send, body)
            return
        route = await services.router.resolve(model)
        if not (
            caller.may_use_model(model) or caller.may_use_model(f"{route.provider}/{route.model}")
        ):
            raise errors.ModelNotAllowed(f"this key may not use model '{model}'", param="model")
        payload, injected = route.client.prepare(body, route.model)
        stats = CallStats(route.provider, route.model)
        scope.setdefault("state", {})["call_stats"] = stats
        try:
            if body.get("stream"):
                relay = await route.client.stream(payload, stats, drop_usage_chunk=injected)
                await relay_stream(relay, receive, send)
            else:
                reply, _ = await route.client.complete(payload, stats)
                await send_bytes(send, 200, reply, JSON_HEADERS)
        except errors.GatewayError as exc:
            if stats.outcome == "success":
                stats.outcome = exc.code or "error"
            raise


async def relay_stream(relay: SSERelay, receive: Receive, send: Send) -> None:
    """Send the stream on; end with an error event if it breaks after the first byte.

    A client that goes away stops the relay and closes the upstream connection, so
    the provider stops generating for nobody.
    """
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    blocks = relay.__aiter__()
    try:
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


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
