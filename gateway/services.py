"""The services object: everything a request needs, built once per app and closed at shutdown.

Both facades (HTTP and MCP) reach the same instance through the app state.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping

from gateway.agents.service import AgentService
from gateway.agents.store import AgentStore
from gateway.chat import ChatService
from gateway.chat.agents import AgentChat
from gateway.chat.models import ModelChat
from gateway.lifecycle import Drain
from gateway.mcp_upstream.servers import McpServers
from gateway.mcp_upstream.tool_source import McpToolSource
from gateway.observability import tracing
from gateway.observability.logging import AccessLog
from gateway.observability.metrics import Metrics
from gateway.observability.recorder import Recorder
from gateway.observability.tracing import from_environ
from gateway.providers.base import ProviderSpec
from gateway.providers.provider import Provider
from gateway.providers.registry import build_providers, check_aliases, provider_specs
from gateway.responses.service import ResponsesService
from gateway.responses.store import ResponseStore
from gateway.routing.groups import Group, LocalCooldowns, ModelGroups, RedisCooldowns
from gateway.routing.router import Router
from gateway.settings import Settings
from gateway.tenants.service import Tenants

log = logging.getLogger("gateway")


class Services:
    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        *,
        tracing: tracing.Tracing | None = None,
    ) -> None:
        self.settings = settings
        # Shutdown: SIGTERM starts it (see `gateway.lifecycle`), or close() does.
        self.drain = Drain(settings.shutdown_grace)
        self.specs: dict[str, ProviderSpec] = provider_specs(
            settings, os.environ if environ is None else environ
        )
        # None unless OTEL_EXPORTER_OTLP_ENDPOINT asks for traces; opentelemetry stays unloaded.
        self.tracing = tracing or from_environ(os.environ if environ is None else environ)
        on_attempt = self.tracing.on_attempt if self.tracing is not None else None
        check_aliases(settings.aliases, self.specs, settings.config_file)
        self.clients: dict[str, Provider] = build_providers(self.specs, on_attempt=on_attempt)
        self.router = Router(self.specs, self.clients, settings.aliases)
        self.metrics = Metrics(providers=self.clients.keys(), is_listed=self._is_listed)
        # The configured `[[mcp_servers]]`: exposed ones connect in start(), others on first use.
        self.mcp_servers = McpServers(settings.mcp_servers)
        # The agent store connects and migrates in start(); creating it opens nothing.
        self.store = AgentStore(settings.resolved_database_url, settings.database_pool_size)
        # Keys, limits and spend; finished requests' usage reaches it through the recorder.
        self.tenants = Tenants(settings, self.store, self.metrics)
        self.recorder = Recorder(
            self.metrics, AccessLog(settings.resolved_log_format), on_usage=self.tenants.record
        )
        # Agents get the tools of their `mcp_servers` from the upstream MCP servers.
        models = ModelChat()
        self.agents = AgentService(
            self.store,
            self.router,
            models,
            settings,
            sources=[McpToolSource(self.mcp_servers)],
            on_turn=lambda agent, turn: self.metrics.agent_turn(agent.name, turn.step_count),
        )
        # Keys, limits and spend; finished requests' usage reaches it through the recorder.
        # `[models.<name>]` groups; their targets' rests are shared through Redis if set.
        self.groups = ModelGroups(
            {name: Group.from_config(name, c) for name, c in settings.models.items()},
            RedisCooldowns(self.tenants.redis, settings.redis_prefix, self.metrics.cooldown)
            if self.tenants.redis is not None
            else LocalCooldowns(self.metrics.cooldown),
        )
        # What every facade calls for a chat: models, aliases, groups and `agent/<name>`.
        self.chat = ChatService(
            self.router,
            models,
            AgentChat(self.agents),
            groups=self.groups,
            on_fallback=self.metrics.fallback,
        )
        # `/v1/responses`; stored replies share the agent store's database and pool.
        self.responses = ResponsesService(self.chat, ResponseStore(self.store))

    async def start(self, *, agents: bool = True) -> None:
        """Start the provider clients and, unless `agents` is false, the agent store."""
        if agents:
            await self.store.open()
            await self.tenants.start()
        for client in self.clients.values():
            await client.start()
        self.mcp_servers.start()
        enabled = ", ".join(self.clients) or "none"
        log.info("providers enabled: %s", enabled)

    async def close(self) -> None:
        # Running agent turns finish first (until the drain's deadline): they still need
        # the clients and the store. Each step runs even if one before it fails, so
        # counts and connections are not lost.
        # The last usage reaches the spend ledger, which writes it before the store closes.
        self.drain.begin()
        self.recorder.flush()
        steps: list[Callable[[], Awaitable[object]]] = [
            self.responses.store.close,  # stored responses still queued are written
            self.tenants.close,
            lambda: self.agents.close(self.drain.remaining()),
            self.mcp_servers.close,
        ]
        steps += [client.close for client in self.clients.values()]
        for step in steps:
            try:
                await step()
            except Exception:
                log.exception("error while shutting down")
        self.recorder.flush()
        self.metrics.close()
        if self.tracing is not None:
            # Flushing the last batch is a blocking HTTP call.
            await asyncio.to_thread(self.tracing.shutdown)

    def _is_listed(self, provider: str, model: str) -> bool:
        client = self.clients.get(provider)
        return client is not None and client.lists(model)

    async def readiness_problems(self) -> list[str]:
        problems: list[str] = []
        if not self.clients:
            problems.append(
                "no provider is enabled: set KIMI_API_KEY, OPENAI_API_KEY, ANTHROPIC_API_KEY "
                "or configure one"
            )
        try:
            await self.store.ping()
        except Exception as exc:
            problems.append(f"the agent store is unreachable: {type(exc).__name__}")
        return problems
