"""An upstream's open 200 stream, read chunk by chunk through a decoder.

`UpstreamStream` owns the response: it reads, maps read failures to gateway errors,
counts the upstream's time into the call record, reports the attempt's end and
releases the connection. What the bytes mean is the decoder's business: the
pass-through relay (`relay.py`) hands on byte blocks, the wire decoders below
turn them into internal `StreamEvent`s.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from typing import Generic, Protocol, TypeVar

import aiohttp
import orjson

from gateway import errors
from gateway.providers.base import AttemptHook, CallRecord
from gateway.wire import sse
from gateway.wire.anthropic_upstream_stream import StreamDecoder
from gateway.wire.internal import Finish, StreamEvent, UsageEvent
from gateway.wire.openai_chat import ChunkDecoder

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Decoder(Protocol[T_co]):
    # An error the upstream reported before any output: the attempt failed (retry).
    failure: errors.GatewayError | None

    def feed(self, chunk: bytes) -> Sequence[T_co]:
        """Bytes in; what goes on (may raise a `GatewayError` after the first output)."""
        ...

    def end(self) -> Sequence[T_co]:
        """The stream closed: the last output, or raise when it ended incomplete."""
        ...


class UpstreamStream(Generic[T]):
    def __init__(
        self,
        resp: aiohttp.ClientResponse,
        record: CallRecord,
        decoder: Decoder[T],
        *,
        t0: float,
        on_end: AttemptHook | None = None,
    ) -> None:
        self._resp = resp
        self._record = record
        self._decoder = decoder
        self._t0 = t0
        self._attempt_started = t0
        self._on_end = on_end
        self._pending: Sequence[T] = ()
        self._relaying = False
        self._closed = False

    @property
    def failure(self) -> errors.GatewayError | None:
        return self._decoder.failure

    async def read_first(self) -> bool:
        """Read until there is output in hand; False if the stream failed or was empty."""
        decoder = self._decoder
        try:
            async for chunk in self._resp.content.iter_any():
                out = decoder.feed(chunk)
                if out:
                    self._record.first_token_seconds = time.perf_counter() - self._t0
                    self._pending = out
                    return True
                if decoder.failure is not None:
                    return False
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            return False
        except errors.GatewayError as exc:
            decoder.failure = exc
            return False
        try:
            self._pending = decoder.end()
        except errors.GatewayError:
            return False
        return bool(self._pending)

    async def __aiter__(self) -> AsyncGenerator[T, None]:
        """Everything after `read_first`, as the decoder's outputs."""
        self._relaying = True
        record = self._record
        try:
            if self._pending:
                pending, self._pending = self._pending, ()
                for item in pending:
                    yield item
            feed = self._decoder.feed
            try:
                async for chunk in self._resp.content.iter_any():
                    for item in feed(chunk):
                        yield item
            except TimeoutError:
                raise errors.UpstreamTimeout(
                    f"{record.provider} stopped sending mid-stream"
                ) from None
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
                raise errors.UpstreamUnavailable(
                    f"{record.provider} closed the stream before it was complete"
                ) from None
            finally:
                record.upstream_seconds += time.perf_counter() - self._t0
                self._t0 = time.perf_counter()
            for item in self._decoder.end():
                yield item
        except errors.GatewayError as exc:
            record.fail(exc)
            raise

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._resp.close()
            # The attempt ends with the stream; one never handed on was reported already.
            if self._on_end is not None and self._relaying:
                outcome = self._record.outcome
                self._on_end(
                    self._record, self._attempt_started, None if outcome == "success" else outcome
                )


class OpenAIChatDecoder:
    """OpenAI chat SSE bytes → internal events, usage into the call record."""

    def __init__(self, record: CallRecord) -> None:
        self.failure: errors.GatewayError | None = None
        self._record = record
        self._buffer = sse.EventBuffer()
        self._chunks = ChunkDecoder(record.provider)
        self._done = False
        self._emitted = False
        self._error: errors.GatewayError | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._error is not None:
            raise self._error
        block = self._buffer.feed(chunk)
        return self._events(block) if block else []

    def end(self) -> list[StreamEvent]:
        if self._error is not None:
            raise self._error
        out = self._events(self._buffer.flush())
        if not self._done:
            out += self._finish()
        if not self._chunks.finished:
            raise errors.UpstreamUnavailable(
                f"{self._record.provider} ended the stream before it was complete"
            )
        return out

    def _events(self, block: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for event in sse.events(block):
            data = sse.data_of(event)
            if data is None or self._done:
                continue
            if data == b"[DONE]":
                self._done = True
                out += self._finish()
                continue
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict):
                continue
            try:
                out += self._chunks.feed(obj)
            except errors.GatewayError as exc:
                if not self._emitted and not out:
                    self.failure = exc  # nothing went on yet: the retry policy decides
                    return []
                # What came before the error goes on first; the next read raises it.
                self._error = exc
                break
        if out:
            self._emitted = True
        return out

    def _finish(self) -> list[StreamEvent]:
        out = self._chunks.end()
        for event in out:
            if isinstance(event, Finish):
                self._record.add_usage(event.usage)
        return out


class AnthropicDecoder:
    """Anthropic Messages SSE bytes → internal events, usage into the call record."""

    def __init__(self, record: CallRecord, *, created: int) -> None:
        self.failure: errors.GatewayError | None = None
        self._record = record
        self._buffer = sse.EventBuffer()
        self._decoder = StreamDecoder(record.provider, created=created)
        self._error: errors.GatewayError | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._error is not None:
            raise self._error
        block = self._buffer.feed(chunk)
        return self._block(block) if block else []

    def _block(self, block: bytes) -> list[StreamEvent]:
        if self.failure is not None:
            return []
        decoder = self._decoder
        out: list[StreamEvent] = []
        for event in sse.events(block):
            out += decoder.feed_event(event)
            if decoder.error is not None:
                if not decoder.started:
                    # Nothing went on yet: hand the error to the retry policy.
                    self.failure = decoder.error
                    return []
                # What came before the error goes on first; the next read raises it.
                self._error = decoder.error
                break
        self._count(out)
        return out

    def _count(self, out: list[StreamEvent]) -> None:
        for event in out:
            if isinstance(event, Finish | UsageEvent):
                self._record.add_usage(event.usage)

    def end(self) -> list[StreamEvent]:
        if self._error is not None:
            raise self._error
        out = self._block(self._buffer.flush())
        out += self._decoder.end()
        if not self._decoder.finished:
            raise errors.UpstreamUnavailable(
                f"{self._record.provider} ended the stream before it was complete"
            )
        self._count(out)
        return out
