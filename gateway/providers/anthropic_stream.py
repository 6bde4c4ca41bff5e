"""Pure translation of Anthropic's Messages event stream into OpenAI chunks.

`StreamTranslator` takes one SSE event at a time (`event: …` / `data: {…}`) and
returns the `chat.completion.chunk` events, as bytes ready to send, that an OpenAI
client expects in its place. It keeps what later events need (message id and model,
which content block is which tool call, the running usage) and tells the caller
whether the reply has started, finished or failed. No I/O here either; the relay in
`anthropic.py` reads the upstream and feeds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway import errors
from gateway.providers.anthropic_translate import finish_reason, stream_error, to_openai_usage

DONE = b"data: [DONE]\n\n"

Handler = Callable[["StreamTranslator", dict[str, Any]], bytes]


class StreamTranslator:
    """One stream's translation state.

    Nothing is emitted before the first content: the role chunk goes out with it. So
    an error the upstream reports before any content (Anthropic sends `overloaded_error`
    inside a 200 stream) leaves `started` false and the caller may still retry.
    """

    def __init__(self, provider: str, *, include_usage: bool, created: int) -> None:
        self.provider = provider
        self.include_usage = include_usage
        self.created = created
        self.id = ""
        self.model = ""
        self.usage: dict[str, int] = {}  # Anthropic's counters, merged as they come
        self.started = False  # a chunk went out
        self.finished = False  # a stop_reason arrived
        self.done = False  # message_stop arrived
        self.error: errors.GatewayError | None = None
        self._tool_calls: dict[int, int] = {}  # content block index → tool call index

    @property
    def openai_usage(self) -> dict[str, Any]:
        return to_openai_usage(self.usage)

    def feed(self, block: bytes) -> bytes:
        """Translate whole events (each ending in a blank line)."""
        return b"".join(self.feed_event(event) for event in block.split(b"\n\n") if event.strip())

    def feed_event(self, event: bytes) -> bytes:
        """Translate one event; events we do not know (and pings) give nothing."""
        data = _data_of(event)
        if data is None:
            return b""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b""
        if not isinstance(obj, dict):
            return b""
        # The data names its type too, and it is the part every event has.
        handler = _HANDLERS.get(str(obj.get("type") or _event_name(event)))
        return handler(self, obj) if handler is not None else b""

    # -- events ------------------------------------------------------------------

    def _message_start(self, obj: dict[str, Any]) -> bytes:
        message = obj.get("message")
        message = message if isinstance(message, dict) else {}
        self.id = str(message.get("id") or "")
        self.model = str(message.get("model") or "")
        self._merge_usage(message.get("usage"))
        return b""

    def _block_start(self, obj: dict[str, Any]) -> bytes:
        block = obj.get("content_block")
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_use" and isinstance(block, dict):
            index = len(self._tool_calls)
            self._tool_calls[_int(obj.get("index"))] = index
            call = {
                "index": index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if kind == "text" and isinstance(block, dict) and block.get("text"):
            return self._chunk({"content": block["text"]})
        return b""

    def _block_delta(self, obj: dict[str, Any]) -> bytes:
        delta = obj.get("delta")
        if not isinstance(delta, dict):
            return b""
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return self._chunk({"content": delta["text"]})
        if kind == "thinking_delta" and delta.get("thinking"):
            return self._chunk({"reasoning_content": delta["thinking"]})
        if kind == "input_json_delta" and delta.get("partial_json"):
            index = self._tool_calls.get(_int(obj.get("index")))
            if index is None:
                return b""
            call = {"index": index, "function": {"arguments": delta["partial_json"]}}
            return self._chunk({"tool_calls": [call]})
        return b""  # signature and citation deltas have no OpenAI counterpart

    def _message_delta(self, obj: dict[str, Any]) -> bytes:
        self._merge_usage(obj.get("usage"))
        delta = obj.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        out = b""
        if reason:
            self.finished = True
            out = self._chunk({}, finish_reason(reason))
        # The usage is final here; OpenAI sends it after the finish chunk, choices empty.
        if self.include_usage:
            out += _frame({**self._base(), "choices": [], "usage": self.openai_usage})
        return out

    def _message_stop(self, obj: dict[str, Any]) -> bytes:
        self.done = True
        return DONE

    def _error(self, obj: dict[str, Any]) -> bytes:
        self.error = stream_error(self.provider, obj)
        return b"data: " + self.error.json_bytes() + b"\n\n"

    # -- output ------------------------------------------------------------------

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> bytes:
        out = b""
        if not self.started:
            self.started = True
            out = self._choice_frame({"role": "assistant", "content": ""}, None)
        return out + self._choice_frame(delta, reason)

    def _choice_frame(self, delta: dict[str, Any], reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return _frame({**self._base(), "choices": [choice]})

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }

    def _merge_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.usage.update(
                (k, v) for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)
            )


_HANDLERS: dict[str, Handler] = {
    "message_start": StreamTranslator._message_start,
    "content_block_start": StreamTranslator._block_start,
    "content_block_delta": StreamTranslator._block_delta,
    "message_delta": StreamTranslator._message_delta,
    "message_stop": StreamTranslator._message_stop,
    "error": StreamTranslator._error,
}


def _frame(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1


def _data_of(event: bytes) -> bytes | None:
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _event_name(event: bytes) -> str:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode(errors="replace")
    return ""
