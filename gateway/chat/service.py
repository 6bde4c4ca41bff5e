"""`ChatService`: resolve a handle, apply the caller's policy, call the target, record.

See the package docstring for the API every facade codes against.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway import errors
from gateway.chat.agents import AgentChat
from gateway.chat.context import ChatContext, EventStream, Target
from gateway.chat.models import ModelChat
from gateway.chat.native import NativeReply, forward_native
from gateway.providers.profiles import WireName
from gateway.providers.streams import UpstreamStream
from gateway.routing.groups import ModelGroups, retryable
from gateway.routing.handles import agent_name
from gateway.routing.router import Route, Router
from gateway.tenants.caller import Caller
from gateway.wire.internal import Completion

log = logging.getLogger("gateway.chat")
T = TypeVar("T")
# (group, from target, to target), as configured: the fallbacks metric.
FallbackHook = Callable[[str, str, str], None]
# The width of the stored `usage.model` column (gateway/tenants/tables.py).
MAX_HANDLE_CHARS = 255


class ChatService:
    def __init__(
        self,
        router: Router,
        models: ModelChat,
        agents: AgentChat,
        *,
        groups: ModelGroups | None = None,
        on_fallback: FallbackHook | None = None,
    ) -> None:
        self.router = router
        self.models = models
        self.agents = agents
        self.groups = groups
        self.on_fallback = on_fallback

    async def resolve(self, handle: Any, caller: Caller) -> Target:
        """The target `handle` names, if the caller may use it (403 otherwise)."""
        if type(handle) is not str or not handle.strip():
            raise errors.InvalidRequest(
                "'model' is required and must be a non-empty string", param="model"
            )
        if len(handle) > MAX_HANDLE_CHARS:
            # A provider's fallback list takes any `<provider>/<id>`, and spend is stored
            # per handle in a column of this width: a longer one could not be recorded.
            raise errors.InvalidRequest(
                f"'model' is longer than {MAX_HANDLE_CHARS} characters", param="model"
            )
        name = agent_name(handle)
        if name is not None:
            if not name:
                raise errors.InvalidRequest(
                    "'agent/' names no agent; use 'agent/<name>'", param="model"
                )
            if not caller.may_use_agent(name):
                raise errors.AgentNotAllowed(f"this key may not use agent '{name}'", param="model")
            return Target(handle, agent=name)
        group = self.groups.get(handle) if self.groups is not None else None
        if group is not None:
            if not caller.may_use_model(handle):
                raise errors.ModelNotAllowed(
                    f"this key may not use model '{handle}'", param="model"
                )
            return await self._group_target(handle)
        route = await self.router.resolve(handle)
        if caller.models is not None and not (
            caller.may_use_model(handle) or caller.may_use_model(route.handle)
        ):
            raise errors.ModelNotAllowed(f"this key may not use model '{handle}'", param="model")
        return Target(handle, route=route)

    async def complete(self, body: dict[str, Any], caller: Caller, ctx: ChatContext) -> Completion:
        """One whole reply for the internal request `body` (an OpenAI chat body)."""
        target = await self.resolve(body.get("model"), caller)
        ctx.served_by = target.handle
        if target.agent is not None:
            return await self.agents.complete(target.agent, body, ctx)
        return await self._each(
            target,
            ctx,
            lambda route: self.models.complete(route, body, ctx.records, key_name=caller.key_name),
        )

    async def stream(self, body: dict[str, Any], caller: Caller, ctx: ChatContext) -> EventStream:
        """The reply's internal events; a failure before the first one raises here."""
        target = await self.resolve(body.get("model"), caller)
        ctx.served_by = target.handle
        if target.agent is not None:
            return await self.agents.stream(target.agent, body, ctx)
        return await self._each(
            target,
            ctx,
            lambda route: self.models.stream(route, body, ctx.records, key_name=caller.key_name),
        )

    # -- pass-through ----------------------------------------------------------------

    def forward(
        self, target: Target, body: dict[str, Any], caller: Caller, ctx: ChatContext
    ) -> Awaitable[bytes]:
        """OpenAI chat in, the upstream's reply bytes out (`passthrough` targets only)."""
        route = _passthrough_route(target)
        if target.group is None:  # the hot path: no extra coroutine or closure
            ctx.served_by = route.handle
            return self.models.forward(route, body, ctx.records, key_name=caller.key_name)
        return self._each(
            target,
            ctx,
            lambda route: self.models.forward(route, body, ctx.records, key_name=caller.key_name),
            usable=lambda route: route.client.passthrough,
        )

    def relay(
        self, target: Target, body: dict[str, Any], caller: Caller, ctx: ChatContext
    ) -> Awaitable[UpstreamStream[bytes]]:
        """OpenAI chat in, the upstream's SSE byte blocks out (`passthrough` targets only)."""
        route = _passthrough_route(target)
        if target.group is None:
            ctx.served_by = route.handle
            return self.models.relay(route, body, ctx.records, key_name=caller.key_name)
        return self._each(
            target,
            ctx,
            lambda route: self.models.relay(route, body, ctx.records, key_name=caller.key_name),
            usable=lambda route: route.client.passthrough,
        )

    def native(self, target: Target, wire: WireName) -> bool:
        """Whether `target` takes a request in client wire format `wire` as it is."""
        return target.route is not None and target.route.client.native(wire) is not None

    async def forward_native(
        self,
        target: Target,
        wire: WireName,
        body: dict[str, Any],
        caller: Caller,
        ctx: ChatContext,
        *,
        headers: dict[str, str] | None = None,
    ) -> NativeReply:
        """A request in another wire format (Anthropic Messages) sent as it is, with the
        upstream's model id put in; see `native.py`. Only where `native()` is true."""
        route = target.route
        if route is None or route.client.native(wire) is None:
            raise errors.InvalidRequest(f"'{target.handle}' does not take {wire} requests")

        async def call(route: Route) -> NativeReply:
            transport = route.client.native(wire)
            assert transport is not None
            return await forward_native(
                transport, wire, route, body, ctx.records, key_name=caller.key_name, headers=headers
            )

        return await self._each(
            target, ctx, call, usable=lambda route: route.client.native(wire) is not None
        )

    # -- model groups ----------------------------------------------------------------

    async def _group_target(self, name: str) -> Target:
        assert self.groups is not None
        group = self.groups.groups[name]
        cooling = await self.groups.cooldowns.cooling(group)
        candidates: list[tuple[str, Route]] = []
        for configured in group.order(cooling):
            try:
                candidates.append((configured, await self.router.resolve(configured)))
            except errors.GatewayError as exc:
                # A target that cannot be resolved (its provider off, the model gone) is
                # skipped; the group's others still serve.
                log.warning("model group %s: target %s skipped: %s", name, configured, exc)
        if not candidates:
            raise errors.ModelNotFound(f"model group '{name}' has no usable target", param="model")
        return Target(name, route=candidates[0][1], group=group, candidates=tuple(candidates))

    async def _each(
        self,
        target: Target,
        ctx: ChatContext,
        call: Callable[[Route], Awaitable[T]],
        usable: Callable[[Route], bool] | None = None,
    ) -> T:
        """Call the target's model; for a group, each candidate in turn while the failures
        are retryable (nothing has reached the client before `call` returns)."""
        group = target.group
        if group is None or self.groups is None:
            assert target.route is not None
            ctx.served_by = target.route.handle
            return await call(target.route)
        cooldowns = self.groups.cooldowns
        candidates = [c for c in target.candidates if usable is None or usable(c[1])]
        previous: str | None = None
        for i, (configured, route) in enumerate(candidates):
            if previous is not None and self.on_fallback is not None:
                self.on_fallback(group.name, previous, configured)
            ctx.served_by = route.handle
            try:
                result = await call(route)
            except errors.GatewayError as exc:
                if not retryable(exc):
                    raise
                await cooldowns.failed(group, configured)
                if i == len(candidates) - 1:
                    raise
                previous = configured
                continue
            await cooldowns.succeeded(group, configured)
            return result
        raise errors.InvalidRequest(f"'{target.handle}' has no target for this request")


def _passthrough_route(target: Target) -> Route:
    route = target.route
    if route is None or not route.client.passthrough:
        raise errors.InvalidRequest(f"'{target.handle}' does not take OpenAI chat requests")
    return route
