"""A provider: one transport plus the wire format its upstream speaks.

`complete` and `stream` take the internal request (an OpenAI chat body, already
encoded by `prepare`) and give internal replies and events, whatever the wire.
`forward` and `relay` are the pass-through lane for a client that speaks the
provider's own wire (OpenAI chat): the upstream's bytes, never re-serialized.
`native(wire)` is the transport that takes another client wire format as it is
(an Anthropic provider's Messages API; Moonshot's Anthropic-compatible endpoint).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

import aiohttp

from gateway.providers.base import CallRecord, ModelInfo, ProviderSpec
from gateway.providers.profiles import WireName
from gateway.providers.relay import RelayFilter
from gateway.providers.streams import UpstreamStream
from gateway.providers.transport import Transport
from gateway.providers.wires import WireFormat, parse_reply
from gateway.wire.internal import Completion, StreamEvent
from gateway.wire.openai_chat import usage_of


class Provider:
    def __init__(
        self,
        spec: ProviderSpec,
        wire: WireFormat,
        transport: Transport,
        native: Mapping[WireName, Transport] | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.wire = wire
        self.transport = transport
        self._url = transport.url(wire.path)
        # Whether OpenAI chat requests go to this provider as they are.
        self.passthrough = wire.name == "openai-chat"
        # Client wire formats this provider takes without translation.
        self._native: dict[WireName, Transport] = {wire.name: transport, **(native or {})}

    def native(self, wire: WireName) -> Transport | None:
        return self._native.get(wire)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        for transport in {id(t): t for t in self._native.values()}.values():
            await transport.start()

    async def close(self) -> None:
        for transport in {id(t): t for t in self._native.values()}.values():
            await transport.close()

    # -- chat ----------------------------------------------------------------------

    def prepare(self, body: dict[str, Any], model: str) -> tuple[bytes, bool]:
        """The upstream request for the internal `body`: (payload, usage_injected)."""
        return self.wire.encode(body, model, self.spec)

    def complete(self, payload: bytes, record: CallRecord) -> Awaitable[Completion]:
        return self.transport.post(self._url, payload, record, self._completion)

    def _completion(self, raw: bytes, record: CallRecord) -> Completion | None:
        completion = self.wire.read_reply(raw)
        if completion is not None:
            record.add_usage(completion.usage)
        return completion

    def stream(self, payload: bytes, record: CallRecord) -> Awaitable[UpstreamStream[StreamEvent]]:
        wire, on_end = self.wire, self.transport.on_attempt

        def reader(resp: aiohttp.ClientResponse, t0: float) -> UpstreamStream[StreamEvent]:
            return UpstreamStream(resp, record, wire.decoder(record), t0=t0, on_end=on_end)

        return self.transport.open_stream(self._url, payload, record, reader)

    # -- the pass-through lane (OpenAI chat) -------------------------------------------

    def forward(self, payload: bytes, record: CallRecord) -> Awaitable[bytes]:
        """The upstream's reply bytes, read only for usage."""
        return self.transport.post(self._url, payload, record, _forwarded)

    def relay(
        self, payload: bytes, record: CallRecord, *, drop_usage_chunk: bool
    ) -> Awaitable[UpstreamStream[bytes]]:
        on_end = self.transport.on_attempt

        def reader(resp: aiohttp.ClientResponse, t0: float) -> UpstreamStream[bytes]:
            relay = RelayFilter(record, drop_usage_chunk=drop_usage_chunk)
            return UpstreamStream(resp, record, relay, t0=t0, on_end=on_end)

        return self.transport.open_stream(self._url, payload, record, reader)

    # -- models --------------------------------------------------------------------

    async def models(self) -> list[ModelInfo]:
        return await self.transport.models()

    def lists(self, model: str) -> bool:
        return self.transport.lists(model)


def _forwarded(raw: bytes, record: CallRecord) -> bytes | None:
    parsed = parse_reply(raw)
    if parsed is None:
        return None
    record.add_usage(usage_of(parsed.get("usage")))
    return raw
