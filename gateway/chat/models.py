"""The model lane of the chat service: one call to a resolved model, recorded once.

Chat requests for a model and the agent loop's steps both come through here, so
quirks, retries, error mapping and the call record are the same for both. The pass-
through lane (`forward`, `relay`) hands on the upstream's bytes for a client that
speaks the provider's own wire format.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from gateway.chat.context import EventStream
from gateway.providers.base import CallRecord
from gateway.providers.streams import UpstreamStream
from gateway.routing.router import Route
from gateway.wire.internal import Completion


class ModelChat:
    """Calls one resolved route; each call appends its `CallRecord` to `records`."""

    def record(self, route: Route, records: list[CallRecord], key_name: str | None) -> CallRecord:
        record = CallRecord(route.provider, route.model, key_name=key_name, handle=route.handle)
        records.append(record)
        return record

    async def complete(
        self,
        route: Route,
        body: dict[str, Any],
        records: list[CallRecord],
        *,
        key_name: str | None = None,
    ) -> Completion:
        body["stream"] = False
        provider = route.client
        payload, _ = provider.prepare(body, route.model)
        return await provider.complete(payload, self.record(route, records, key_name))

    async def stream(
        self,
        route: Route,
        body: dict[str, Any],
        records: list[CallRecord],
        *,
        key_name: str | None = None,
    ) -> EventStream:
        """Open the stream; it fails here, not mid-iteration, if nothing came yet."""
        body["stream"] = True
        provider = route.client
        payload, _ = provider.prepare(body, route.model)
        upstream = await provider.stream(payload, self.record(route, records, key_name))
        return EventStream(upstream.__aiter__(), upstream.aclose)

    # The pass-through lane returns the provider's awaitable as it is: one coroutine
    # fewer on the hottest path. Failures are recorded by the transport.

    def forward(
        self,
        route: Route,
        body: dict[str, Any],
        records: list[CallRecord],
        *,
        key_name: str | None = None,
    ) -> Awaitable[bytes]:
        """The pass-through reply: the upstream's bytes as they came."""
        provider = route.client
        payload, _ = provider.prepare(body, route.model)
        return provider.forward(payload, self.record(route, records, key_name))

    def relay(
        self,
        route: Route,
        body: dict[str, Any],
        records: list[CallRecord],
        *,
        key_name: str | None = None,
    ) -> Awaitable[UpstreamStream[bytes]]:
        """The pass-through stream: byte blocks ready to send, `aclose()` when done."""
        provider = route.client
        payload, injected = provider.prepare(body, route.model)
        record = self.record(route, records, key_name)
        return provider.relay(payload, record, drop_usage_chunk=injected)
