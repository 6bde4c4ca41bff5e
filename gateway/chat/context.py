"""The shapes the chat service and its callers exchange: context, target, event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.providers.base import CallRecord
from gateway.wire.internal import StreamEvent

if TYPE_CHECKING:
    from gateway.agents.loop import StepFn
    from gateway.agents.schemas import TurnResult
    from gateway.routing.groups import Group
    from gateway.routing.router import Route


@dataclass(slots=True)
class ChatContext:
    """What a facade knows of a request beyond its body, and what the service tells back.

    In: the conversation and idempotency key of an agent turn (`X-Conversation-Id`,
    `Idempotency-Key`, or the facade's own fields), and who hears of each agent step.
    Out: the request's call records (one per upstream call; an agent turn makes
    several), which the facade leaves for the observability middleware, the handle
    that served the request, and an agent turn's result.
    """

    conversation: str | None = None
    idempotency_key: str | None = None
    on_step: StepFn | None = None
    records: list[CallRecord] = field(default_factory=list)
    served_by: str | None = None
    turn: TurnResult | None = None

    @property
    def upstream_seconds(self) -> float:
        return sum(record.upstream_seconds for record in self.records)


@dataclass(slots=True)
class Target:
    """A resolved handle: a model (`route`) or an agent (`agent`, its name).

    A model group's target also has `group` and its `candidates` in the order they are
    tried, as (the target as configured, its route); `route` is the first of them.
    """

    handle: str
    route: Route | None = None
    agent: str | None = None
    group: Group | None = None
    candidates: tuple[tuple[str, Route], ...] = ()


class EventStream:
    """One reply's internal events: iterate once, then `aclose()` (it releases the upstream).

    A failure after the first event is raised by the iteration as a `GatewayError`.
    """

    def __init__(
        self, events: AsyncIterator[StreamEvent], close: Callable[[], Awaitable[None]]
    ) -> None:
        self._events = events
        self._close = close

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()
        await self._close()
