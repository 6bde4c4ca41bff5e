"""Anthropic's Messages API, client side: whole replies and errors out.

`to_message` turns an internal `Completion` into a Messages reply; `error_body` renders
any gateway error in Anthropic's shape, the type chosen by status as Anthropic's own
error table does. Streams are `anthropic_messages_sse.py`. No I/O here.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway import errors
from gateway.wire.internal import Completion, FinishReason, Usage

# The stop reason Anthropic reports for each of OpenAI's finish reasons.
STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def message_id(completion_id: str) -> str:
    return completion_id if completion_id.startswith("msg_") else f"msg_{completion_id}"


def usage_of(usage: Usage) -> dict[str, int]:
    """Anthropic counts cached prompt tokens apart from `input_tokens`; OpenAI within."""
    return {
        "input_tokens": max(0, usage.prompt_tokens - usage.cached_tokens),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def to_message(completion: Completion, model: str) -> dict[str, Any]:
    """The Messages reply for a completion; `model` is the one the client asked for."""
    content: list[dict[str, Any]] = []
    if completion.reasoning:
        # No signature: only Anthropic can sign thinking, and only Anthropic checks it.
        content.append({"type": "thinking", "thinking": completion.reasoning, "signature": ""})
    if completion.content:
        content.append({"type": "text", "text": completion.content})
    for call in completion.tool_calls:
        content.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": tool_input(call.arguments),
            }
        )
    stop_reason = STOP_REASONS.get(completion.finish_reason, "end_turn")
    if completion.tool_calls and stop_reason == "end_turn":
        stop_reason = "tool_use"  # some servers say "stop" after a tool call
    return {
        "id": message_id(completion.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage_of(completion.usage),
    }


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the object `tool_use.input` must be.

    A model may emit invalid JSON; the client then runs the tool with `{}` and the
    tool's own complaint about missing input goes back to the model, which is how
    Anthropic clients recover from a bad call anyway.
    """
    try:
        value = orjson.loads(arguments) if arguments.strip() else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# -- errors -------------------------------------------------------------------------


def error_type(error: errors.GatewayError) -> str:
    """Anthropic's error type for a gateway error, by its status (as Anthropic's table)."""
    status = error.status
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 413:
        return "request_too_large"
    if status == 429:
        return "rate_limit_error"
    if status in (503, 529) or error.code == "overloaded_error":
        return "overloaded_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


def error_body(error: errors.GatewayError, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error_type(error), "message": error.message},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def error_bytes(error: errors.GatewayError, request_id: str | None = None) -> bytes:
    return orjson.dumps(error_body(error, request_id))
