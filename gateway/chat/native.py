"""The native lane: a client's request in another wire format, sent to a provider that
speaks it (the Anthropic Messages API of an `anthropic` provider, or of a provider with
an Anthropic-compatible base URL, such as Moonshot's). Only the model id is replaced;
replies come back as the upstream's bytes, read only for usage and errors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from gateway import errors
from gateway.providers.base import CallRecord
from gateway.providers.profiles import WireName
from gateway.providers.streams import UpstreamStream
from gateway.providers.transport import Transport
from gateway.routing.router import Route
from gateway.wire import anthropic_upstream, sse
from gateway.wire.anthropic_upstream_stream import StreamDecoder

# Where each client wire format is posted, relative to the native base URL.
PATHS: dict[WireName, str] = {"anthropic-messages": "/messages"}


@dataclass
class NativeReply:
    """Either `body` (a whole reply) or `stream` (SSE byte blocks; `aclose()` it)."""

    body: bytes | None = None
    stream: UpstreamStream[bytes] | None = None


async def forward_native(
    transport: Transport,
    wire: WireName,
    route: Route,
    body: dict[str, Any],
    records: list[CallRecord],
    *,
    key_name: str | None,
    headers: dict[str, str] | None = None,
) -> NativeReply:
    record = CallRecord(route.provider, route.model, key_name=key_name, handle=route.handle)
    records.append(record)
    body["model"] = route.model
    payload = orjson.dumps(body)
    url = transport.url(PATHS[wire])
    if not body.get("stream"):
        reply = await transport.post(url, payload, record, _message_bytes, headers)
        return NativeReply(body=reply)
    on_end = transport.on_attempt

    def reader(resp: aiohttp.ClientResponse, t0: float) -> UpstreamStream[bytes]:
        return UpstreamStream(resp, record, MessagesFilter(record), t0=t0, on_end=on_end)

    stream = await transport.open_stream(url, payload, record, reader, headers)
    return NativeReply(stream=stream)


def _message_bytes(raw: bytes, record: CallRecord) -> bytes | None:
    """A whole Messages reply as it came, its usage recorded; None when it is not one."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "message":
        return None
    record.add_usage(anthropic_upstream.usage_of(message.get("usage")))
    return raw


class MessagesFilter:
    """Anthropic Messages SSE bytes on as they are; usage and errors into the record."""

    def __init__(self, record: CallRecord) -> None:
        self.failure: errors.GatewayError | None = None
        self._record = record
        self._buffer = sse.EventBuffer()
        self._decoder = StreamDecoder(record.provider, created=int(time.time()))
        self._sent = False

    def feed(self, chunk: bytes) -> list[bytes]:
        block = self._buffer.feed(chunk)
        return self._block(block) if block else []

    def _block(self, block: bytes) -> list[bytes]:
        decoder = self._decoder
        for event in sse.events(block):
            decoder.feed_event(event)
        if decoder.error is not None:
            if not self._sent:
                # Nothing went on yet (an `overloaded_error` first): a failed attempt.
                self.failure = decoder.error
                return []
            self._record.fail(decoder.error)
            decoder.error = None
        if b"usage" in block:
            self._record.add_usage(decoder.usage)
        self._sent = True
        return [block]

    def end(self) -> list[bytes]:
        rest = self._buffer.flush()
        out = self._block(rest) if rest else []
        if not self._decoder.done and self._record.outcome == "success":
            raise errors.UpstreamUnavailable(
                f"{self._record.provider} ended the stream before it was complete"
            )
        return out
