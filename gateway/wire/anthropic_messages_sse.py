"""Internal stream events as Anthropic's Messages event stream (server-sent events).

`MessageStream` takes the internal `StreamEvent`s of one reply, one at a time, and
returns the SSE bytes an Anthropic client expects in their place: `message_start`,
then content blocks (`content_block_start`, `_delta`, `_stop`) one after the other,
then `message_delta` with the stop reason and usage, and `message_stop`.

Anthropic's blocks never interleave, while an OpenAI-style upstream may switch from
reasoning to text to tool calls at any chunk: each switch closes the open block and
opens the next. A tool call's first delta opens its `tool_use` block (id and name),
its argument fragments follow as `input_json_delta`s. No I/O here.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway import errors
from gateway.wire.anthropic_messages_reply import STOP_REASONS, error_bytes, message_id, usage_of
from gateway.wire.internal import (
    Finish,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageEvent,
)


def frame(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_frame(error: errors.GatewayError, request_id: str | None = None) -> bytes:
    """The frame that ends a started stream which failed."""
    return b"event: error\ndata: " + error_bytes(error, request_id) + b"\n\n"


class MessageStream:
    """One reply's translation state; `model` is the model the client asked for."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False  # message_start went out
        self.finished = False  # message_stop went out
        self._usage = Usage()
        self._index = -1  # the open block's index; blocks are numbered from 0
        self._open: str | None = None  # "text", "thinking" or "tool_use"
        self._tool: int | None = None  # the open tool_use block's upstream call index
        self._tools_seen: set[int] = set()
        self._calls = 0

    def feed(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            return self._text("text", event.text) if event.text else b""
        if isinstance(event, ReasoningDelta):
            return self._text("thinking", event.text) if event.text else b""
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event)
        if isinstance(event, UsageEvent):
            self._usage = event.usage
            return b""
        if isinstance(event, Start):
            return self._start(event)
        if isinstance(event, Finish):
            return self._finish(event)
        return b""

    # -- events ------------------------------------------------------------------------

    def _start(self, event: Start) -> bytes:
        if self.started:
            return b""
        self.started = True
        message: dict[str, Any] = {
            "id": message_id(event.id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # OpenAI-style upstreams count tokens at the end: message_delta has them.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return frame("message_start", {"type": "message_start", "message": message})

    def _text(self, kind: str, text: str) -> bytes:
        out = b""
        if self._open != kind:
            out = self._close() + self._open_block(kind, {"type": kind, kind: ""})
        delta = {"type": f"{kind}_delta", kind: text}
        return out + self._delta(delta)

    def _tool_call(self, event: ToolCallDelta) -> bytes:
        out = b""
        if self._tool != event.index:
            if event.index in self._tools_seen:
                # A fragment of a call whose block is closed cannot be delivered any more;
                # OpenAI-style upstreams send each call's fragments together.
                return b""
            self._tools_seen.add(event.index)
            self._calls += 1
            block = {
                "type": "tool_use",
                "id": event.id or f"toolu_gw{self._calls}",
                "name": event.name or "",
                "input": {},
            }
            out = self._close() + self._open_block("tool_use", block)
            self._tool = event.index
        if event.arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": event.arguments})
        return out

    def _finish(self, event: Finish) -> bytes:
        if event.usage is not None:
            self._usage = event.usage
        reason = STOP_REASONS.get(event.reason, "end_turn")
        if self._calls and reason == "end_turn":
            reason = "tool_use"  # some servers say "stop" after a tool call
        delta = {"stop_reason": reason, "stop_sequence": None}
        out = self._close() + frame(
            "message_delta",
            {"type": "message_delta", "delta": delta, "usage": usage_of(self._usage)},
        )
        self.finished = True
        return out + frame("message_stop", {"type": "message_stop"})

    # -- blocks ------------------------------------------------------------------------

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        self._index += 1
        self._open = kind
        return frame(
            "content_block_start",
            {"type": "content_block_start", "index": self._index, "content_block": block},
        )

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return frame(
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        self._open = None
        self._tool = None
        return frame("content_block_stop", {"type": "content_block_stop", "index": self._index})
