"""One model call of an agent step, through the chat service's model lane.

The loop builds the request as an internal body (an OpenAI chat dict); the model lane
(`gateway.chat.models.ModelChat`, given to the agent service by its constructor)
applies the provider's quirks, retries and error mapping, and records the call,
exactly as for a chat request. A streamed reply arrives as internal events and is
assembled here (content, reasoning, tool-call fragments, usage), each text delta
handed to the caller as it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.providers.base import CallRecord
from gateway.routing.router import Route
from gateway.wire.internal import (
    Completion,
    Finish,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
)

DeltaFn = Callable[[str], None]


class EventStream(Protocol):
    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


class ModelCaller(Protocol):
    """What the loop needs of the chat service's model lane."""

    async def complete(
        self, route: Route, body: dict[str, Any], records: list[CallRecord]
    ) -> Completion: ...

    async def stream(
        self, route: Route, body: dict[str, Any], records: list[CallRecord]
    ) -> EventStream: ...


@dataclass
class ModelReply:
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


async def call_model(
    models: ModelCaller,
    route: Route,
    body: dict[str, Any],
    records: list[CallRecord],
    *,
    on_delta: DeltaFn | None = None,
) -> ModelReply:
    """Send `body` (streamed when `on_delta` is given) and return the assembled reply."""
    if on_delta is None:
        return _from_completion(await models.complete(route, body, records))
    events = await models.stream(route, body, records)
    assembler = _Assembler(on_delta)
    try:
        async for event in events:
            assembler.feed(event)
    finally:
        await events.aclose()
    return assembler.reply()


def _from_completion(completion: Completion) -> ModelReply:
    return ModelReply(
        content=completion.content,
        reasoning_content=completion.reasoning,
        tool_calls=[_call(c.id, c.name, c.arguments) for c in completion.tool_calls],
        finish_reason=completion.finish_reason,
        prompt_tokens=completion.usage.prompt_tokens,
        completion_tokens=completion.usage.completion_tokens,
    )


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


class _Assembler:
    def __init__(self, on_delta: DeltaFn) -> None:
        self._on_delta = on_delta
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, list[str]] = {}  # index → [id, name, arguments]
        self._finish: Finish | None = None

    def feed(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._content.append(event.text)
            self._on_delta(event.text)
        elif isinstance(event, ReasoningDelta):
            self._reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            call = self._calls.setdefault(event.index, ["", "", ""])
            if event.id:
                call[0] = event.id
            if event.name:
                call[1] += event.name
            call[2] += event.arguments
        elif isinstance(event, Finish):
            self._finish = event

    def reply(self) -> ModelReply:
        finish = self._finish
        usage = finish.usage if finish is not None else None
        return ModelReply(
            content="".join(self._content) if self._content else None,
            reasoning_content="".join(self._reasoning) if self._reasoning else None,
            tool_calls=[_call(*call) for _, call in sorted(self._calls.items())],
            finish_reason=finish.reason if finish is not None else None,
            prompt_tokens=usage.prompt_tokens if usage is not None else 0,
            completion_tokens=usage.completion_tokens if usage is not None else 0,
        )
