"""Relay an upstream's server-sent events chunk by chunk, reading only what we need.

Events are forwarded as soon as they are complete. Only events that mention `usage`
or `error` are parsed: usage feeds the metrics (Moonshot puts it inside `choices[0]`
of the final chunk, OpenAI in a trailing chunk with no choices), errors set the
call's outcome. The trailing usage chunk is dropped when the gateway asked for it
and the client did not.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from gateway import errors
from gateway.providers.base import AttemptHook, CallStats

DONE = b"data: [DONE]\n\n"


class SSERelay:
    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        stats: CallStats,
        *,
        drop_usage_chunk: bool,
        t0: float,
        on_end: AttemptHook | None = None,
    ) -> None:
        self._resp = resp
        self._stats = stats
        self._drop_usage = drop_usage_chunk
        self._t0 = t0
        self._buffer = b""
        self._pending = b""
        self._saw_done = False
        self._saw_finish = False
        self._closed = False
        self._on_end = on_end
        self._attempt_started = t0
        self._relaying = False
        # An error the upstream reported before anything was relayed: the client's
        # retry policy gets it, and the client a plain error response if it is final.
        self.failure: errors.GatewayError | None = None

    @property
    def provider(self) -> str:
        return self._stats.provider

    async def read_first(self) -> bool:
        """Read until at least one whole event is in hand; False if the stream was empty."""
        try:
            async for chunk in self._resp.content.iter_any():
                self._pending += self._feed(chunk)
                if self._pending or self._saw_done:
                    self._stats.first_token_seconds = time.perf_counter() - self._t0
                    return bool(self._pending)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            return False
        return False

    async def __aiter__(self) -> AsyncGenerator[bytes, None]:
        """The events after the first, as byte blocks ready to send."""
        self._relaying = True
        if self._pending:
            first, self._pending = self._pending, b""
            yield first
        try:
            async for chunk in self._resp.content.iter_any():
                out = self._feed(chunk)
                if out:
                    yield out
        except TimeoutError:
            self._stats.outcome = "upstream_timeout"
            raise errors.UpstreamTimeout(f"{self.provider} stopped sending mid-stream") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            self._stats.outcome = "upstream_unavailable"
            raise errors.UpstreamUnavailable(
                f"{self.provider} closed the stream before it was complete"
            ) from None
        finally:
            self._stats.upstream_seconds += time.perf_counter() - self._t0
            self._t0 = time.perf_counter()
        if self._buffer.strip():
            out = self._feed(b"\n\n")
            if out:
                yield out
        if not self._saw_done:
            if self._stats.outcome != "success":
                # The upstream's own error event was the stream's last word: no [DONE].
                return
            if not self._saw_finish:
                self._stats.outcome = "upstream_unavailable"
                raise errors.UpstreamUnavailable(
                    f"{self.provider} ended the stream before it was complete"
                )
            # Some compatible servers omit the terminator; clients wait for it.
            yield DONE

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._resp.close()
            # The attempt ends with the relay; one that never relayed was reported already.
            if self._on_end is not None and self._relaying:
                outcome = self._stats.outcome
                self._on_end(
                    self._stats, self._attempt_started, None if outcome == "success" else outcome
                )

    def _feed(self, chunk: bytes) -> bytes:
        """Add bytes; return the complete events that should go to the client."""
        complete = self._complete_events(chunk)
        if not complete:
            return b""
        if not _worth_parsing(complete):
            # A model may say "[DONE]" itself; only the terminator event counts.
            if b"[DONE]" in complete and any(
                _data_of(event) == b"[DONE]" for event in complete.split(b"\n\n")
            ):
                self._saw_done = True
            return complete
        return b"".join(self._inspect(event) for event in complete.split(b"\n\n") if event)

    def _complete_events(self, chunk: bytes) -> bytes:
        """Buffer `chunk`; return the events it completes, each ending in a blank line."""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        data = self._buffer + chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return b""
        complete, self._buffer = data[: end + 2], data[end + 2 :]
        return complete

    def _inspect(self, event: bytes) -> bytes:
        data = _data_of(event)
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
            self._stats.add_usage(first.get("usage"))
        usage = obj.get("usage")
        if usage:
            self._stats.add_usage(usage)
            if self._drop_usage and not choices:
                return b""
        return event + b"\n\n"

    def _record_error(self, error: Any) -> None:
        code = error.get("code") if isinstance(error, dict) else None
        self._stats.outcome = str(code) if code else "upstream_error"


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


def _data_of(event: bytes) -> bytes | None:
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(lines)
