"""Prompt token counts for `/v1/messages/count_tokens`, from the provider where it has them.

A provider that takes Anthropic's Messages API natively (an `anthropic` provider, or a
provider with an Anthropic-compatible base URL) counts with its own
`/messages/count_tokens`, the request passed on as it came. A provider whose profile
names a token-count endpoint (Moonshot's `/tokenizers/estimate-token-count`: `{model,
messages}` in, `{"data": {"total_tokens": N}}` out) counts the translated messages; it
takes no tools, so theirs are estimated and added. Everything else, and a token-count
endpoint that fails, gets None: the caller estimates (`wire.anthropic_messages`).

These calls are not chat requests: their records stay out of the request metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway import errors
from gateway.chat.context import Target
from gateway.providers.base import CallRecord
from gateway.providers.transport import Transport
from gateway.wire.anthropic_messages import estimate_tokens


async def count_tokens(
    target: Target,
    messages_body: dict[str, Any],
    internal: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
) -> int | None:
    """The provider's count for a Messages request (`internal`: its translation)."""
    route = target.route
    if route is None:
        return None
    native = route.client.native("anthropic-messages")
    record = CallRecord(route.provider, route.model, handle=route.handle)
    if native is not None:
        body = {**messages_body, "model": route.model}
        return await _post(native, "/messages/count_tokens", body, record, _anthropic, headers)
    path = route.client.spec.profile.token_count_path
    if path is None:
        return None
    body = {"model": route.model, "messages": internal["messages"]}
    try:
        counted = await _post(route.client.transport, path, body, record, _moonshot)
    except errors.GatewayError:
        return None
    tools = internal.get("tools")
    return counted + (estimate_tokens({"tools": tools}) if tools else 0)


async def _post(
    transport: Transport,
    path: str,
    body: dict[str, Any],
    record: CallRecord,
    read: Callable[[Any], int | None],
    headers: dict[str, str] | None = None,
) -> int:
    def parse(raw: bytes, record: CallRecord) -> int | None:
        try:
            return read(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return None

    return await transport.post(transport.url(path), orjson.dumps(body), record, parse, headers)


def _anthropic(reply: Any) -> int | None:
    count = reply.get("input_tokens") if isinstance(reply, dict) else None
    return count if isinstance(count, int) else None


def _moonshot(reply: Any) -> int | None:
    data = reply.get("data") if isinstance(reply, dict) else None
    count = data.get("total_tokens") if isinstance(data, dict) else None
    return count if isinstance(count, int) else None
