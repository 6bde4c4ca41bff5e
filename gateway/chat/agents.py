"""The agent lane of the chat service: `agent/<name>` as a model, a turn as a reply.

The new input is the request's user messages after its last assistant message (all
of them when there is none); system and developer messages are ignored, since the
agent has its own. A turn's reply is a `Completion`, or `Start`, `TextDelta`s and
`Finish` events, with the turn's usage summed over its steps. A stream opens with
its first text, so a turn that fails before saying anything fails before the first
event. A reader that stops early does not stop the turn: it is stored all the same.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from gateway import errors
from gateway.agents.schemas import TurnResult
from gateway.agents.service import AgentService, TurnStream
from gateway.chat.context import ChatContext, EventStream
from gateway.wire.internal import (
    Completion,
    Finish,
    FinishReason,
    Start,
    StreamEvent,
    TextDelta,
    Usage,
)


class AgentChat:
    def __init__(self, agents: AgentService) -> None:
        self.agents = agents

    async def complete(self, name: str, body: dict[str, Any], ctx: ChatContext) -> Completion:
        inputs = turn_input(body)
        result = await self.agents.run_turn(
            name,
            inputs,
            conversation=ctx.conversation,
            idempotency_key=ctx.idempotency_key,
            on_step=ctx.on_step,
            calls=ctx.records,
        )
        ctx.turn = result
        return Completion(
            id=f"chatcmpl-{result.turn_id}",
            model=str(body.get("model") or ""),
            created=int(result.created_at),
            content=result.reply,
            finish_reason=finish_reason(result.finish_reason),
            usage=usage_of(result),
        )

    async def stream(self, name: str, body: dict[str, Any], ctx: ChatContext) -> EventStream:
        inputs = turn_input(body)
        turn = await self.agents.stream_turn(
            name,
            inputs,
            conversation=ctx.conversation,
            idempotency_key=ctx.idempotency_key,
            on_step=ctx.on_step,
            calls=ctx.records,
        )
        deltas = turn.__aiter__()
        # The first text (or the turn's end) before the first event: a turn that
        # fails before saying anything raises here.
        try:
            first: str | None = await deltas.__anext__()
        except StopAsyncIteration:
            first = None
        events = _events(turn, deltas, first, str(body.get("model") or ""), ctx)
        return EventStream(events, _nothing)


async def _events(
    turn: TurnStream,
    deltas: AsyncIterator[str],
    first: str | None,
    model: str,
    ctx: ChatContext,
) -> AsyncIterator[StreamEvent]:
    yield Start(f"chatcmpl-{turn.turn_id}", model, int(time.time()))
    if first is not None:
        yield TextDelta(first)
        async for delta in deltas:
            yield TextDelta(delta)
    result = turn.result
    assert result is not None  # set when the deltas ended without an error
    ctx.turn = result
    yield Finish(finish_reason(result.finish_reason), usage_of(result))


async def _nothing() -> None:
    """A turn goes on without its reader; closing the stream has nothing to release."""


def turn_input(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The user messages after the last assistant message; 400 for what an agent refuses."""
    if body.get("tools") or body.get("functions"):
        raise errors.InvalidRequest(
            "an agent model runs its own tools; remove 'tools' from the request (attach "
            "tools to the agent instead)",
            param="tools",
        )
    n = body.get("n")
    if n is not None and n != 1:
        raise errors.InvalidRequest("an agent gives one answer per turn; 'n' must be 1", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise errors.InvalidRequest("'messages' must be an array", param="messages")
    return new_input(messages)


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


def finish_reason(reason: str) -> FinishReason:
    if reason == "length":
        return "length"
    if reason == "content_filter":
        return "content_filter"
    return "stop"


def usage_of(result: TurnResult) -> Usage:
    return Usage(
        prompt_tokens=result.usage.prompt_tokens, completion_tokens=result.usage.completion_tokens
    )
