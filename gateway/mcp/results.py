"""Tool results as MCP clients read them: text for people and models, structure for programs.

Every tool answers with a `CallToolResult` it builds itself, so the text is written for a
reader (not a JSON dump) while `structured_content` matches the tool's output schema. A
gateway error becomes an error result carrying the mapped message, never a JSON-RPC error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

from gateway import errors
from gateway.observability.metrics import Metrics

# The two kinds of tool the gateway serves: lookups, and calls that reach a model.
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
CALLS_MODEL = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)

log = logging.getLogger("gateway.mcp")

# `_meta` key under which an error result also carries the OpenAI-style error object.
ERROR_META_KEY = "agent-gateway/error"


def ok(data: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=data.model_dump(mode="json"),
    )


def error(exc: errors.GatewayError) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=exc.message)],
        is_error=True,
        _meta={ERROR_META_KEY: exc.body()["error"]},
    )


async def guarded(tool: str, run: Callable[[], Awaitable[CallToolResult]]) -> CallToolResult:
    """Run a tool body; a gateway error is an error result, and so is a bug (logged here)."""
    try:
        return await run()
    except errors.GatewayError as exc:
        return error(exc)
    except Exception:
        log.exception("MCP tool %s failed", tool)
        return error(errors.GatewayError(f"internal error in the gateway while running {tool}"))


async def serve(
    metrics: Metrics, tool: str, run: Callable[[], Awaitable[CallToolResult]]
) -> CallToolResult:
    """Run a tool body as an MCP result (errors included) and count it."""
    result = await guarded(tool, run)
    metrics.tool_call(tool, outcome(result))
    return result


def outcome(result: CallToolResult) -> str:
    """The metrics outcome of a result: `success`, or the error's code."""
    if not result.is_error:
        return "success"
    error = (result.meta or {}).get(ERROR_META_KEY) or {}
    return str(error.get("code") or "error")


def first_text(reply: dict[str, Any]) -> tuple[str, str | None]:
    """(content, finish_reason) of a parsed `chat.completion`; content '' when it has none."""
    choices = reply.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    finish = choice.get("finish_reason")
    return (content if isinstance(content, str) else ""), (
        finish if isinstance(finish, str) else None
    )
