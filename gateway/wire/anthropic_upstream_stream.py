"""An Anthropic upstream's Messages event stream as internal `StreamEvent`s.

`StreamDecoder` takes one SSE event at a time (`event: …` / `data: {…}`) and returns
the internal events it stands for. It keeps what later events need (message id and
model, which content block is which tool call, the running usage) and tells the
caller whether the reply has started, finished or failed. No I/O here; the
provider's stream reader feeds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway import errors
from gateway.wire.anthropic_upstream import finish_reason, stream_error, usage_of
from gateway.wire.internal import (
    Finish,
    FinishReason,
    ReasoningDelta,
    Start,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from gateway.wire.sse import data_of, name_of

Handler = Callable[["StreamDecoder", dict[str, Any]], list[StreamEvent]]


class StreamDecoder:
    """One stream's decoding state.

    Nothing is emitted before the first content: `Start` goes out with it. So an error
    the upstream reports before any content (Anthropic sends `overloaded_error` inside
    a 200 stream) leaves `started` false and the caller may still retry.
    """

    def __init__(self, provider: str, *, created: int) -> None:
        self.provider = provider
        self.created = created
        self.id = ""
        self.model = ""
        self.raw_usage: dict[str, int] = {}  # Anthropic's counters, merged as they come
        self.started = False  # an event went out
        self.finished = False  # a stop_reason arrived
        self.done = False  # message_stop arrived
        self.error: errors.GatewayError | None = None
        self._reason: FinishReason | None = None
        self._tool_calls: dict[int, int] = {}  # content block index → tool call index

    @property
    def usage(self) -> Usage:
        return usage_of(self.raw_usage)

    def feed_event(self, event: bytes) -> list[StreamEvent]:
        """Decode one event; events we do not know (and pings) give nothing."""
        data = data_of(event)
        if data is None:
            return []
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(obj, dict):
            return []
        # The data names its type too, and it is the part every event has.
        handler = _HANDLERS.get(str(obj.get("type") or name_of(event)))
        return handler(self, obj) if handler is not None else []

    # -- events ------------------------------------------------------------------

    def _message_start(self, obj: dict[str, Any]) -> list[StreamEvent]:
        message = obj.get("message")
        message = message if isinstance(message, dict) else {}
        self.id = str(message.get("id") or "")
        self.model = str(message.get("model") or "")
        self._merge_usage(message.get("usage"))
        return []

    def _block_start(self, obj: dict[str, Any]) -> list[StreamEvent]:
        block = obj.get("content_block")
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_use" and isinstance(block, dict):
            index = len(self._tool_calls)
            self._tool_calls[_int(obj.get("index"))] = index
            name = block.get("name")
            call_id = block.get("id")
            return self._out(
                ToolCallDelta(
                    index,
                    id=call_id if isinstance(call_id, str) else "",
                    name=name if isinstance(name, str) else "",
                )
            )
        if kind == "text" and isinstance(block, dict) and block.get("text"):
            return self._out(TextDelta(str(block["text"])))
        return []

    def _block_delta(self, obj: dict[str, Any]) -> list[StreamEvent]:
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._out(TextDelta(str(delta["text"])))
        if kind == "thinking_delta" and delta.get("thinking"):
            return self._out(ReasoningDelta(str(delta["thinking"])))
        if kind == "input_json_delta" and delta.get("partial_json"):
            index = self._tool_calls.get(_int(obj.get("index")))
            if index is None:
                return []
            return self._out(ToolCallDelta(index, arguments=str(delta["partial_json"])))
        return []  # signature and citation deltas have no internal counterpart

    def _message_delta(self, obj: dict[str, Any]) -> list[StreamEvent]:
        self._merge_usage(obj.get("usage"))
        delta = obj.get("delta")
        reason = finish_reason(delta.get("stop_reason") if isinstance(delta, dict) else None)
        if reason is not None:
            self.finished = True
            self._reason = reason
            if not self.started:  # a reply with no content at all
                return self._out()
        return []

    def _message_stop(self, obj: dict[str, Any]) -> list[StreamEvent]:
        self.done = True
        return self.end()

    def _error(self, obj: dict[str, Any]) -> list[StreamEvent]:
        self.error = stream_error(self.provider, obj)
        return []

    def end(self) -> list[StreamEvent]:
        """`Finish` once a stop reason came (the usage is final by then)."""
        if self._reason is None:
            return []
        reason, self._reason = self._reason, None
        return [Finish(reason, self.usage)]

    # -- output ------------------------------------------------------------------

    def _out(self, *events: StreamEvent) -> list[StreamEvent]:
        if self.started:
            return list(events)
        self.started = True
        return [Start(self.id, self.model, self.created), *events]

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.raw_usage.update(
                (k, v) for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)
            )


_HANDLERS: dict[str, Handler] = {
    "message_start": StreamDecoder._message_start,
    "content_block_start": StreamDecoder._block_start,
    "content_block_delta": StreamDecoder._block_delta,
    "message_delta": StreamDecoder._message_delta,
    "message_stop": StreamDecoder._message_stop,
    "error": StreamDecoder._error,
}


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1
