"""Tools an agent's model may call: the built-ins, and the interface other sources fill.

Built-ins use Letta's names: `core_memory_append`, `core_memory_replace` and
`conversation_search`. Whatever goes wrong in a tool (bad arguments, an unknown
block, a write over a block's limit, an unknown tool, a bug) comes back to the model
as the tool's result, starting with "Error:", and never fails the turn.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from gateway.agents.schemas import AgentRecord

if TYPE_CHECKING:
    from gateway.agents.turns import StepTx

log = logging.getLogger("gateway.agents")

SEARCH_LIMIT = 10
SEARCH_PREVIEW = 500


class ToolError(Exception):
    """A refusal or failure the model should read and can act on."""


@dataclass
class ToolContext:
    agent: AgentRecord
    conversation: str
    # The step's transaction; None for tools that run outside it.
    tx: StepTx | None


ToolFn = Callable[[ToolContext, dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: ToolFn
    # Built-ins work on the store inside the step's transaction; tools that call out
    # (MCP servers) run before it, so no transaction ever waits on the network.
    transactional: bool = True

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ToolSource(Protocol):
    """Where an agent's other tools come from (the MCP client plugs in here)."""

    async def tools_for(self, agent: AgentRecord) -> list[Tool]: ...


async def execute(
    tool: Tool | None, call: dict[str, Any], ctx: ToolContext, available: Sequence[str]
) -> str:
    """Run one tool call; every failure becomes an "Error: …" result."""
    function = call.get("function") or {}
    name = function.get("name")
    try:
        if tool is None:
            names = ", ".join(available) or "none"
            raise ToolError(f"there is no tool named '{name}'; available tools: {names}")
        args = _arguments(function.get("arguments"), tool.parameters)
        return await tool.run(ctx, args)
    except ToolError as exc:
        return f"Error: {exc}"
    except Exception as exc:
        log.exception("tool %s failed", name)
        return f"Error: the tool '{name}' failed unexpectedly ({type(exc).__name__})"


def _arguments(raw: Any, schema: dict[str, Any]) -> dict[str, Any]:
    if raw is None or raw == "":
        args: Any = {}
    elif isinstance(raw, dict):
        args = raw
    else:
        try:
            args = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ToolError(f"the arguments are not valid JSON ({exc})") from None
    if not isinstance(args, dict):
        raise ToolError("the arguments must be a JSON object")
    properties = schema.get("properties", {})
    for field in schema.get("required", []):
        if field not in args:
            raise ToolError(f"missing argument '{field}'")
    for field, spec in properties.items():
        if spec.get("type") == "string" and field in args and not isinstance(args[field], str):
            raise ToolError(f"argument '{field}' must be a string")
    return args


# -- built-ins ---------------------------------------------------------------------------


def _tx(ctx: ToolContext) -> StepTx:
    assert ctx.tx is not None, "built-in tools run inside the step's transaction"
    return ctx.tx


async def _block(ctx: ToolContext, label: str) -> tuple[str, int]:
    tx = _tx(ctx)
    block = await tx.block(label)
    if block is None:
        labels = ", ".join(await tx.labels()) or "none"
        raise ToolError(f"there is no memory block '{label}'; blocks: {labels}")
    return block.value, block.limit


def _check_limit(label: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise ToolError(
            f"refused: block '{label}' would hold {len(value)} characters, over its limit "
            f"of {limit}; nothing was changed. Shorten it with core_memory_replace first."
        )


async def core_memory_append(ctx: ToolContext, args: dict[str, Any]) -> str:
    label, content = args["label"], args["content"]
    value, limit = await _block(ctx, label)
    new = f"{value}\n{content}" if value else content
    _check_limit(label, new, limit)
    await _tx(ctx).set_block(label, new)
    return f"Appended to '{label}' ({len(new)} of {limit} characters used)."


async def core_memory_replace(ctx: ToolContext, args: dict[str, Any]) -> str:
    label, old, new_text = args["label"], args["old_content"], args["new_content"]
    if not old:
        raise ToolError("old_content must not be empty; use core_memory_append to add text")
    value, limit = await _block(ctx, label)
    if old not in value:
        raise ToolError(f"old_content was not found in block '{label}'; it must match exactly")
    new = value.replace(old, new_text)
    _check_limit(label, new, limit)
    await _tx(ctx).set_block(label, new)
    return f"Replaced in '{label}' ({len(new)} of {limit} characters used)."


async def conversation_search(ctx: ToolContext, args: dict[str, Any]) -> str:
    words = args["query"].split()
    if not words:
        raise ToolError("query must not be empty")
    found = await _tx(ctx).search(words, SEARCH_LIMIT)
    results = [
        {
            "role": m.role,
            "content": (m.content or "")[:SEARCH_PREVIEW],
            "created_at": int(m.created_at),
        }
        for m in found
    ]
    return orjson.dumps(
        {"query": args["query"], "count": len(results), "results": results}
    ).decode()


def _string(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


BUILTINS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "core_memory_append",
            "Append text to one of your memory blocks (a new line is added first). Use it "
            "to remember facts that matter later, about the user or yourself.",
            {
                "type": "object",
                "properties": {
                    "label": _string("Label of the memory block, e.g. 'human'."),
                    "content": _string("Text to append."),
                },
                "required": ["label", "content"],
            },
            core_memory_append,
        ),
        Tool(
            "core_memory_replace",
            "Replace text in one of your memory blocks; old_content must match exactly. "
            "An empty new_content deletes old_content.",
            {
                "type": "object",
                "properties": {
                    "label": _string("Label of the memory block."),
                    "old_content": _string("The exact text to replace."),
                    "new_content": _string("The new text."),
                },
                "required": ["label", "old_content", "new_content"],
            },
            core_memory_replace,
        ),
        Tool(
            "conversation_search",
            "Search this conversation's earlier messages, including those no longer in "
            "view, for messages that contain every word of the query (case-insensitive).",
            {
                "type": "object",
                "properties": {"query": _string("Words to look for.")},
                "required": ["query"],
            },
            conversation_search,
        ),
    )
}
