"""What the model sees: the system prompt with memory blocks, and history cut to fit.

Token counts are estimates (UTF-8 bytes / 4 plus a per-message overhead): good enough
to keep a request inside the window with the margin we reserve for the reply, and
free of a tokenizer per provider. Trimming cuts only before a user message, so the
model never sees a tool result without the call that asked for it, and never cuts
into the turn in progress. What is cut stays stored and searchable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from gateway.agents.schemas import AgentRecord, Block, StoredMessage

MESSAGE_OVERHEAD = 4
# For a model whose window nobody knows (no provider list, no agent limit): without a
# cap the history would grow until every request failed as too long.
DEFAULT_WINDOW = 32768
# Without a max_tokens of its own, an agent keeps this share of the window for replies.
REPLY_SHARE = 8
REPLY_CAP = 4096


def estimate_tokens(message: dict[str, Any]) -> int:
    size = 0
    for key in ("content", "reasoning_content", "tool_calls"):
        value = message.get(key)
        if isinstance(value, str):
            size += len(value.encode())
        elif value is not None:
            size += len(orjson.dumps(value))
    return size // 4 + MESSAGE_OVERHEAD


def render_system(
    agent: AgentRecord, blocks: Sequence[Block], evicted: int, tool_names: Sequence[str]
) -> str:
    parts = [agent.system.strip()]
    if blocks:
        editable = {"core_memory_append", "core_memory_replace"} & set(tool_names)
        how = (
            "Edit them with " + " and ".join(sorted(editable)) + "; "
            if editable
            else "They are read-only for you; "
        )
        lines = [
            "<memory_blocks>",
            "Your core memory, always in view. " + how + "a block holds at most its limit "
            "in characters.",
        ]
        for block in blocks:
            lines += [
                f"<{block.label}>",
                f"<metadata>characters: {len(block.value)} of {block.limit}</metadata>",
                block.value,
                f"</{block.label}>",
            ]
        lines.append("</memory_blocks>")
        parts.append("\n".join(lines))
    if evicted:
        where = (
            "conversation_search finds them"
            if "conversation_search" in tool_names
            else "they are stored but out of view"
        )
        parts.append(
            f"<conversation_history>{evicted} earlier messages of this conversation are "
            f"out of view; {where}.</conversation_history>"
        )
    return "\n\n".join(p for p in parts if p)


def history_budget(
    window: int | None, max_tokens: int | None, system: str, tools: Sequence[dict[str, Any]]
) -> int:
    """Tokens the history may use in a window of `window` tokens (None: unknown)."""
    window = window or DEFAULT_WINDOW
    reserve = max_tokens or min(REPLY_CAP, window // REPLY_SHARE)
    fixed = estimate_tokens({"content": system})
    if tools:
        fixed += len(orjson.dumps(tools)) // 4
    return window - reserve - fixed


def trim_start(history: Sequence[StoredMessage], budget: int, protect_from: int) -> int:
    """Index of the first message to keep so that the rest fits `budget`.

    Only a user message may start the kept history; messages from `protect_from` on
    (the turn in progress) are always kept, even when they alone do not fit.
    """
    total = sum(m.tokens for m in history)
    if total <= budget:
        return 0
    kept = sum(m.tokens for m in history[protect_from:])
    best = protect_from
    for i in range(protect_from - 1, -1, -1):
        kept += history[i].tokens
        if kept > budget:
            break
        if history[i].role == "user":
            best = i
    return best
