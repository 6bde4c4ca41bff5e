"""The internal representation every translator speaks.

Requests: an OpenAI chat completions body (`dict`), since every provider but one speaks
it and the pass-through lane forwards it as it is. Replies and streams: the typed
shapes below, so a translator from one client protocol never needs to know which
provider served the reply, nor the other way round.

A stream is a sequence of `StreamEvent`s: `Start` once, then any interleaving of
`TextDelta`, `ReasoningDelta` and `ToolCallDelta` (a tool call's first delta carries
its id and name, later ones only argument fragments, all with the same `index`),
then `Finish` once (its `usage` may also arrive separately as a `UsageEvent` first).
An upstream failure after `Start` is raised as a `GatewayError` by the iterator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# OpenAI's finish reasons; translators map them to their protocol's stop reasons.
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model produced it


@dataclass(slots=True)
class Completion:
    """A whole (non-streamed) reply."""

    id: str
    model: str
    created: int
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)


@dataclass(slots=True)
class Start:
    id: str
    model: str
    created: int


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ReasoningDelta:
    text: str


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None  # set on the call's first delta
    name: str | None = None  # set on the call's first delta
    arguments: str = ""  # a fragment of the JSON arguments


@dataclass(slots=True)
class UsageEvent:
    usage: Usage


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    usage: Usage | None = None


StreamEvent = Start | TextDelta | ReasoningDelta | ToolCallDelta | UsageEvent | Finish
