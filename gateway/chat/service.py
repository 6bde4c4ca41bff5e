"""`ChatService`: resolve a handle, apply the caller's policy, call the target, record.

See the package docstring for the API every facade codes against.
"""

from __future__ import annotations

from typing import Any

from gateway import errors
from gateway.chat.agents import AgentChat
from gateway.chat.context import ChatContext, EventStream, Target
from gateway.chat.models import ModelChat
from gateway.chat.native import NativeReply, forward_native
from gateway.providers.profiles import WireName
from gateway.providers.streams import UpstreamStream
from gateway.routing.handles import agent_name
from gateway.routing.router import Router
from gateway.tenants.caller import Caller
from gateway.wire.internal import Completion


class ChatService:
    def __init__(self, router: Router, models: ModelChat, agents: AgentChat) -> None:
        self.router = router
        self.models = models
        self.agents = agents

    async def resolve(self, handle: Any, caller: Caller) -> Target:
        """The target `handle` names, if the caller may use it (403 otherwise)."""
        if not isinstance(handle, str) or not handle.strip():
            raise errors.InvalidRequest(
                "'model' is required and must be a non-empty string", param="model"
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
        route = await self.router.resolve(handle)
        if not (caller.may_use_model(handle) or caller.may_use_model(route.handle)):
            raise errors.ModelNotAllowed(f"this key may not use model '{handle}'", param="model")
        return Target(handle, route=route)

    async def complete(self, body: dict[str, Any], caller: Caller, ctx: ChatContext) -> Completion:
        """One whole reply for the internal request `body` (an OpenAI chat body)."""
        target = await self.resolve(body.get("model"), caller)
        ctx.served_by = target.handle
        if target.agent is not None:
            return await self.agents.complete(target.agent, body, ctx)
        assert target.route is not None
        ctx.served_by = target.route.handle
        return await self.models.complete(target.route, body, ctx.records, key_name=caller.key_name)

    async def stream(self, body: dict[str, Any], caller: Caller, ctx: ChatContext) -> EventStream:
        """The reply's internal events; a failure before the first one raises here."""
        target = await self.resolve(body.get("model"), caller)
        ctx.served_by = target.handle
        if target.agent is not None:
            return await self.agents.stream(target.agent, body, ctx)
        assert target.route is not None
        ctx.served_by = target.route.handle
        return await self.models.stream(target.route, body, ctx.records, key_name=caller.key_name)

    # -- pass-through ----------------------------------------------------------------

    async def forward(
        self, target: Target, body: dict[str, Any], caller: Caller, ctx: ChatContext
    ) -> bytes:
        """OpenAI chat in, the upstream's reply bytes out (`passthrough` targets only)."""
        route = _passthrough_route(target)
        ctx.served_by = route.handle
        return await self.models.forward(route, body, ctx.records, key_name=caller.key_name)

    async def relay(
        self, target: Target, body: dict[str, Any], caller: Caller, ctx: ChatContext
    ) -> UpstreamStream[bytes]:
        """OpenAI chat in, the upstream's SSE byte blocks out (`passthrough` targets only)."""
        route = _passthrough_route(target)
        ctx.served_by = route.handle
        return await self.models.relay(route, body, ctx.records, key_name=caller.key_name)

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
        transport = route.client.native(wire) if route is not None else None
        if route is None or transport is None:
            raise errors.InvalidRequest(f"'{target.handle}' does not take {wire} requests")
        ctx.served_by = route.handle
        return await forward_native(
            transport, wire, route, body, ctx.records, key_name=caller.key_name, headers=headers
        )


def _passthrough_route(target: Target) -> Any:
    route = target.route
    if route is None or not route.client.passthrough:
        raise errors.InvalidRequest(f"'{target.handle}' does not take OpenAI chat requests")
    return route
