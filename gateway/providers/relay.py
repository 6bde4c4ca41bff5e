"""The pass-through lane's stream filter: OpenAI chat SSE bytes on, read only as needed.

Events are handed on as soon as they are complete. Only events that mention `usage`,
`error` or a finish reason are parsed: usage feeds the call record (Moonshot puts it
inside `choices[0]` of the final chunk, OpenAI in a trailing chunk with no choices),
errors set the call's outcome. When the gateway asked for usage and the client did
not, the trailing usage chunk is dropped and the `"usage": null` of every other chunk
left out (a byte replace, no parse).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway import errors
from gateway.providers.base import CallRecord
from gateway.wire import sse
from gateway.wire.openai_chat import usage_of

DONE = sse.DONE


class RelayFilter:
    """A `Decoder` of byte blocks for `UpstreamStream`: bytes in, the same bytes out."""

    def __init__(self, record: CallRecord, *, drop_usage_chunk: bool) -> None:
        self.failure: errors.GatewayError | None = None
        self._record = record
        self._drop_usage = drop_usage_chunk
        self._buffer = sse.EventBuffer()
        self._saw_done = False
        self._saw_finish = False

    def feed(self, chunk: bytes) -> tuple[bytes, ...]:
        complete = self._buffer.feed(chunk)
        if not complete:
            return ()
        if self._drop_usage and b'"usage"' in complete:
            complete = _strip_null_usage(complete)
        if not _worth_parsing(complete):
            # A model may say "[DONE]" itself; only the terminator event counts.
            if b"[DONE]" in complete and any(
                sse.data_of(event) == b"[DONE]" for event in complete.split(b"\n\n")
            ):
                self._saw_done = True
            return (complete,)
        out = b"".join(self._inspect(event) for event in complete.split(b"\n\n") if event)
        return (out,) if out else ()

    def end(self) -> tuple[bytes, ...]:
        rest = self._buffer.flush()
        out = self.feed(rest) if rest else ()
        if self._saw_done:
            return out
        if self._record.outcome != "success":
            # The upstream's own error event was the stream's last word: no [DONE].
            return out
        if not self._saw_finish:
            raise errors.UpstreamUnavailable(
                f"{self._record.provider} ended the stream before it was complete"
            )
        # Some compatible servers omit the terminator; clients wait for it.
        return (*out, DONE)

    def _inspect(self, event: bytes) -> bytes:
        data = sse.data_of(event)
        if data == b"[DONE]":
            self._saw_done = True
            return event + b"\n\n"
        if data is None:
            return event + b"\n\n"
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        if not isinstance(obj, dict):
            return event + b"\n\n"
        if "error" in obj:
            self._record_error(obj["error"])
            return event + b"\n\n"
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            first = choices[0]
            if first.get("finish_reason"):
                self._saw_finish = True
            self._record.add_usage(usage_of(first.get("usage")))
        usage = obj.get("usage")
        if usage:
            self._record.add_usage(usage_of(usage))
            if self._drop_usage and not choices:
                return b""
        return event + b"\n\n"

    def _record_error(self, error: Any) -> None:
        code = error.get("code") if isinstance(error, dict) else None
        self._record.outcome = str(code) if code else "upstream_error"


def _strip_null_usage(block: bytes) -> bytes:
    """Leave out the `"usage": null` OpenAI adds to every chunk once usage is asked for,
    when it was the gateway that asked: the client's chunks look as if it had not."""
    for null in (b',"usage":null', b', "usage": null', b'"usage":null,', b'"usage": null, '):
        if null in block:
            block = block.replace(null, b"")
    return block


def _worth_parsing(block: bytes) -> bool:
    """Most content chunks carry nothing we read; skip parsing those.

    OpenAI sends `"usage":null` in every chunk once usage is asked for: only a usage
    object is worth a parse.
    """
    return (
        b'"usage":{' in block
        or b'"usage": {' in block
        or b"error" in block
        or b'finish_reason":"' in block
        or b'finish_reason": "' in block
    )
